"""The edge predictor: a KServe model server that shares preprocessing with training."""
