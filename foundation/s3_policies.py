"""S3 policies per edge: what one store's credentials may touch, drawn from the layout.

Two scopes, both built from :class:`foundation.layout.Layout`, so a key that moves moves
its policy with it:

- :func:`edge_site_policy`: the store's own object store.  The edge's services (gateway,
  sync controller, model server) use a credential confined to the edge's bucket.
- :func:`edge_core_policy`: the core's object store, as seen through the front door on an
  edge's behalf.  It writes its own dataset, claims and catalogue, and reads its own
  models, nothing else.  The front door enforces this scope in code with the core's own
  credential; the policy is for operators who want a second wall (an IAM role per edge, a
  MinIO policy, or an STS session policy, as the tests apply it), not applied by the door.
"""

from __future__ import annotations

from typing import Any

from foundation.layout import Layout, Location, edge_model_name

_WRITE = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
_READ = ["s3:GetObject"]


def _folder(location: Location) -> Location:
    return Location(location.bucket, location.key.rsplit("/", 1)[0] + "/")


def _arn(location: Location) -> str:
    return f"arn:aws:s3:::{location.bucket}/{location.key}*"


def _listing(bucket: str, prefixes: list[str]) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{bucket}"],
        "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
    }


def edge_site_policy(layout: Layout, edge: str) -> dict[str, Any]:
    """Everything in the edge's own bucket, nothing outside it."""
    bucket = layout.edge_bucket(edge)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": [*_READ, *_WRITE, "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


def edge_core_policy(layout: Layout, edge: str) -> dict[str, Any]:
    """The edge's dataset, claims and catalogue (write), and its models (read) at the core."""
    home = layout.core_catalogue_home(edge)
    written = [
        layout.datasets_prefix(edge),
        layout.dataset_claims_prefix(edge),
        _folder(layout.dataset_set_marker(edge, "0" * 64)),
        _folder(home.catalogue),
    ]
    models = layout.models_prefix(edge_model_name(edge))
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": [*_READ, *_WRITE], "Resource": [_arn(loc) for loc in written]},
        {"Effect": "Allow", "Action": _READ, "Resource": [_arn(models)]},
    ]
    for bucket in sorted({loc.bucket for loc in [*written, models]}):
        prefixes = [loc.key for loc in [*written, models] if loc.bucket == bucket]
        statements.append(_listing(bucket, prefixes))
    return {"Version": "2012-10-17", "Statement": statements}
