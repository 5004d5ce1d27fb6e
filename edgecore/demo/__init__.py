"""``edgecore demo``: the whole loop, two stores, two rounds, on the local stack.

Every part runs as the real service a user would run, each in its own supervised
process (``world`` names them, ``supervisor`` runs them); ``devices`` plays the kiosks
and the store staff over HTTP; ``rounds`` drives the story and measures it.  Nothing
here imports the services' code: the demo sees them only through their HTTP APIs, S3
and Kafka, as the stores and the core would.
"""
