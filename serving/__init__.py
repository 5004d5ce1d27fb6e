"""The edge predictor: a KServe model server that shares preprocessing with training.

``predictor``      the ``kserve.Model`` (load / preprocess / predict; V1, V2 and raw image bodies)
``model_version``  a version folder or ``s3://`` prefix, verified against its manifest, LiteRT first
``repository``     KServe's model repository endpoints, driven by the edge bucket's serving pointer
``capture``        photos flagged unsure to ``unrecognized/``, on a bounded background queue
``metrics``        Prometheus series on KServe's ``/metrics``
``scrape``         reading a server's ``/metrics`` back (histograms, quantiles, version served)
``asgi``           the body-size bound and the lean raw-image route in front of KServe's app
``server``         the entry point (``python -m serving.server``, ``edgecore serve start``)
``isvc``           the InferenceService, ServingRuntime, S3 secret and service account
"""
