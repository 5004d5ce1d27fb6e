"""The core's status page for ML engineers (``edgecore core page``)."""
