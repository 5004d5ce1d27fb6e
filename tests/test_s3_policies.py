"""Each edge's S3 policies confine it on a real object store.

The policies the core cluster ships (``manifests/core/edge-access.yaml``) are applied here
as STS session policies on the local MinIO: a session holding one edge's policy writes
that edge's dataset and reads its models, and is refused another edge's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from edgecore.stack import Stack
from foundation.layout import Layout, edge_model_name
from foundation.s3_policies import edge_core_policy, edge_site_policy
from foundation.settings import Settings

NORTH, SOUTH = "north", "south"


@pytest.fixture(scope="module")
def scoped(stack: Stack, settings: Settings) -> tuple[Settings, Layout]:
    unique = uuid.uuid4().hex[:10]
    cfg = settings.updated(
        buckets={
            "training": f"p-train-{unique}",
            "models": f"p-models-{unique}",
            "edge_prefix": f"p-{unique}-",
        }
    )
    layout = Layout(cfg.buckets)
    root = _client(cfg, None)
    for bucket in (
        cfg.buckets.training,
        cfg.buckets.models,
        layout.edge_bucket(NORTH),
        layout.edge_bucket(SOUTH),
    ):
        root.create_bucket(Bucket=bucket)
    for edge in (NORTH, SOUTH):
        model = layout.model_file(edge_model_name(edge), "v000001", "manifest.json")
        root.put_object(Bucket=model.bucket, Key=model.key, Body=b"{}")
    return cfg, layout


def _client(cfg: Settings, policy: dict[str, Any] | None) -> BaseClient:
    s3 = cfg.s3
    keys = {"aws_access_key_id": s3.access_key, "aws_secret_access_key": s3.secret_key.get_secret_value()}
    if policy is not None:
        sts = boto3.client("sts", endpoint_url=s3.endpoint_url, region_name=s3.region, **keys)
        creds = sts.assume_role(
            RoleArn="arn:xxx:xxx:xxx:xxxx", RoleSessionName="edge-scope", Policy=json.dumps(policy)
        )["Credentials"]
        keys = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
    return boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region, **keys)


def _allowed(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
        return False
    return True


def test_an_edge_s_core_scope_writes_its_own_dataset_but_not_another_edge_s(
    scoped: tuple[Settings, Layout],
) -> None:
    cfg, layout = scoped
    north = _client(cfg, edge_core_policy(layout, NORTH))
    own, other = layout.dataset_manifest(NORTH, "v000001"), layout.dataset_manifest(SOUTH, "v000001")
    assert _allowed(north.put_object, Bucket=own.bucket, Key=own.key, Body=b"{}")
    assert not _allowed(north.put_object, Bucket=other.bucket, Key=other.key, Body=b"{}")


def test_an_edge_s_core_scope_reads_its_own_models_but_not_another_edge_s(
    scoped: tuple[Settings, Layout],
) -> None:
    cfg, layout = scoped
    north = _client(cfg, edge_core_policy(layout, NORTH))
    own = layout.model_file(edge_model_name(NORTH), "v000001", "manifest.json")
    other = layout.model_file(edge_model_name(SOUTH), "v000001", "manifest.json")
    assert _allowed(north.get_object, Bucket=own.bucket, Key=own.key)
    assert not _allowed(north.get_object, Bucket=other.bucket, Key=other.key)


def test_an_edge_s_core_scope_cannot_publish_a_model(scoped: tuple[Settings, Layout]) -> None:
    cfg, layout = scoped
    north = _client(cfg, edge_core_policy(layout, NORTH))
    forged = layout.model_file(edge_model_name(NORTH), "v000002", "manifest.json")
    assert not _allowed(north.put_object, Bucket=forged.bucket, Key=forged.key, Body=b"{}")


def test_an_edge_s_site_scope_is_its_own_bucket_only(scoped: tuple[Settings, Layout]) -> None:
    cfg, layout = scoped
    north = _client(cfg, edge_site_policy(layout, NORTH))
    assert _allowed(north.put_object, Bucket=layout.edge_bucket(NORTH), Key="incoming/x", Body=b"x")
    assert not _allowed(north.put_object, Bucket=layout.edge_bucket(SOUTH), Key="incoming/x", Body=b"x")
    assert not _allowed(north.list_objects_v2, Bucket=cfg.buckets.training)
