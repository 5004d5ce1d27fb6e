"""Support of the tests and benchmarks: real servers on free ports, real model versions, a Kubernetes API.

Importable by both (no ``sys.path`` edits); no product package imports it.
"""
