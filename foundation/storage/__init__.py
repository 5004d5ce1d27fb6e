"""S3 in one package: the boto3 store for control calls and writes, the signed wire for the hot paths."""
