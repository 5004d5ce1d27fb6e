"""The shared base every part of the loop stands on: contracts and clients.

It imports nothing else of the project; the services (components, pipelines, serving,
edge_sync) import it, and the application (edgecore) composes them all.
"""
