"""Separate sites: each store its own MinIO, none reachable by the core; stores pull through the door.

The core's front door runs over TLS with the local CA; each store is a site of its own
(``edgecore.stack.site``: a MinIO process with the store's own credentials) and pulls its
model into its own storage with its own token.  The core's settings hold no store's
storage credential, and a store's token opens its own model and dataset only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge_sync.delivery.controller import SyncContext
from edge_sync.delivery.edges import EdgeSpec, LocalSpec
from edge_sync.delivery.fleet import ControllerFleet
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.delivery.pull import Puller
from edge_sync.delivery.targets.local import LocalServerTarget
from edgecore.stack import Stack
from edgecore.stack.site import EdgeSite
from foundation.credentials import new_token
from foundation.errors import Forbidden, Unauthorized
from foundation.events import ModelPublished
from foundation.layout import CATALOGUE_FILE, MANIFEST, Layout, edge_model_name, sensor_model_name
from foundation.manifest import Manifest
from foundation.registry import fetch_verified, newest_version, read_version
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from foundation.tls import client_context
from testkit.conditions import wait_for
from testkit.serving import upload_version, write_version
from testkit.uplink import DoorCore, door_core

NORTH, SOUTH, EAST = "north", "south", "east"
TOKENS = {NORTH: new_token(), SOUTH: new_token(), EAST: new_token()}


@dataclass(frozen=True)
class Core(DoorCore):
    def publish(self, tmp: Path, edge: str, version: str, model: str | None = None) -> None:
        """A gated version in the core's registry, as the pipeline's publish step leaves it."""
        model = model or edge_model_name(edge)
        root = write_version(tmp / f"{model}-{version}", edge, version, model=model)
        upload_version(self.store, self.layout.model_prefix(model, version), root)


@pytest.fixture(scope="module")
def core(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    with door_core(settings, tmp_path_factory.mktemp("core"), TOKENS) as door:
        yield Core(**vars(door))


@pytest.fixture(scope="module")
def north(core: Core) -> Iterator[EdgeSite]:
    site = EdgeSite(core.settings, NORTH)
    site.up(mqtt=False)
    yield site
    site.down()


def _puller(
    core: Core, site: EdgeSite, tmp: Path, token: str = TOKENS[NORTH], keep: Path | None = None
) -> Puller:
    return Puller(
        core.client(site.edge, token), ObjectStore(site.settings.s3), Layout(site.settings.buckets), tmp, keep
    )


def test_a_store_site_runs_its_own_storage_which_the_core_s_credentials_cannot_open(
    core: Core, north: EdgeSite
) -> None:
    site_store = ObjectStore(north.settings.s3)
    bucket = Layout(north.settings.buckets).edge_bucket(NORTH)
    assert north.settings.s3.endpoint_url != core.settings.s3.endpoint_url
    assert bucket in [b["Name"] for b in site_store.client.list_buckets()["Buckets"]]
    with_core_keys = ObjectStore(core.settings.s3.model_copy(update={"port": north.settings.s3.port}))
    with pytest.raises(Exception, match="InvalidAccessKeyId|AccessDenied|credentials|403"):
        with_core_keys.client.list_buckets()


def test_a_store_pulls_its_newest_model_into_its_own_storage_verified(
    core: Core, north: EdgeSite, tmp_path: Path
) -> None:
    core.publish(tmp_path, NORTH, "v000001")
    core.publish(tmp_path, NORTH, "v000002")

    pulled = _puller(core, north, tmp_path).pull(edge_model_name(NORTH))
    again = _puller(core, north, tmp_path).pull(edge_model_name(NORTH))

    site_store = ObjectStore(north.settings.s3)
    here = newest_version(
        site_store, Layout(north.settings.buckets).edge_models_prefix(NORTH, edge_model_name(NORTH))
    )
    assert (pulled, again) == ("v000002", None)
    assert here is not None and here.version == "v000002"
    registry = core.store.get_bytes(
        core.layout.model_prefix(edge_model_name(NORTH), "v000002").child(MANIFEST)
    )
    assert here.manifest == Manifest.from_bytes(registry, "registry")


class _NoDownloads:
    """A reader that fails any download: what is fetched must already be there."""

    def download(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded again")


def test_a_pulled_version_is_left_verified_where_the_controller_fetches_it(
    core: Core, north: EdgeSite, tmp_path: Path
) -> None:
    model = edge_model_name(NORTH)
    core.publish(tmp_path, NORTH, "v000003")

    assert (
        _puller(core, north, tmp_path / "scratch", keep=tmp_path / "work").pull(model, expect="v000003")
        == "v000003"
    )

    site_layout = Layout(north.settings.buckets)
    stored = read_version(
        ObjectStore(north.settings.s3), site_layout.edge_model_prefix(NORTH, model, "v000003")
    )
    kept = tmp_path / "work" / NORTH / model / "v000003"
    fetched = fetch_verified(_NoDownloads(), stored, kept)  # type: ignore[arg-type]
    assert fetched.path == kept


def test_a_store_cannot_read_another_store_s_model(core: Core, tmp_path: Path) -> None:
    core.publish(tmp_path, SOUTH, "v000001")
    as_north_for_south = core.client(SOUTH, TOKENS[NORTH])
    north_asking_another_model = core.client(NORTH, TOKENS[NORTH])

    with pytest.raises(Forbidden, match="belongs to edge north"):
        as_north_for_south.newest(edge_model_name(SOUTH))
    with pytest.raises(Forbidden, match="only its own model"):
        north_asking_another_model.newest(edge_model_name(SOUTH))


def test_a_store_pulls_its_sensor_model_too_and_cannot_read_another_store_s(
    core: Core, north: EdgeSite, tmp_path: Path
) -> None:
    core.publish(tmp_path, NORTH, "v000001", model=sensor_model_name(NORTH))
    core.publish(tmp_path, SOUTH, "v000001", model=sensor_model_name(SOUTH))

    pulled = _puller(core, north, tmp_path).pull(sensor_model_name(NORTH))

    assert pulled == "v000001"
    with pytest.raises(Forbidden, match="only its own models"):
        core.client(NORTH, TOKENS[NORTH]).newest(sensor_model_name(SOUTH))


def test_a_site_s_sync_controller_brings_in_the_sensor_model_an_event_names(
    core: Core, tmp_path: Path
) -> None:
    site = EdgeSite(core.settings, EAST)
    site.up(mqtt=False)
    store, layout = ObjectStore(site.settings.s3), Layout(site.settings.buckets)
    local = LocalSpec(url="http://127.0.0.1:9", probes=tmp_path)  # never asked: no product model here
    spec = EdgeSpec(edge=EAST, target=local)
    target = LocalServerTarget(local.url, EAST, spec.model_name, tmp_path, store, layout)
    ctx = SyncContext(store, layout, SyncMetrics(), tmp_path / "work")
    puller = _puller(core, site, tmp_path / "scratch", TOKENS[EAST])
    fleet = ControllerFleet(
        site.settings.delivery, site.settings.kafka, [spec], {EAST: target}, ctx, pullers={EAST: puller}
    )
    try:
        core.publish(tmp_path, EAST, "v000001", model=sensor_model_name(EAST))
        fleet.on_event(_published(sensor_model_name(EAST), "v000001", EAST))

        here = wait_for(
            lambda: newest_version(store, layout.edge_models_prefix(EAST, sensor_model_name(EAST))),
            30,
            what="the sensor model in the site's bucket",
        )
        assert here is not None and here.version == "v000001"
    finally:
        fleet.close()
        site.down()


def _published(model: str, version: str, edge: str) -> ModelPublished:
    return ModelPublished(
        model=model,
        version=version,
        registry_uri=f"s3://registry/{model}/{version}/",
        edges=[edge],
        files={"sensor_model.json": "0" * 64},
        labels=["temperature_c"],
    )


def test_a_store_cannot_download_another_store_s_model_files_nor_anyone_without_a_token(
    core: Core, tmp_path: Path
) -> None:
    core.publish(tmp_path, SOUTH, "v000002")
    model = edge_model_name(SOUTH)

    with pytest.raises(Forbidden):
        core.client(SOUTH, TOKENS[NORTH]).download(model, "v000002", MANIFEST, lambda _: None)
    url = f"{core.url}/v1/edges/{SOUTH}/models/{model}/versions/v000002/files/{MANIFEST}"
    assert httpx.get(url, verify=client_context(core.settings.ca_file)).status_code == 401  # no token


def test_a_wrong_token_is_refused(core: Core) -> None:
    with pytest.raises(Unauthorized):
        core.client(NORTH, new_token()).newest(edge_model_name(NORTH))


def test_a_long_poll_returns_as_soon_as_a_newer_version_is_published(core: Core, tmp_path: Path) -> None:
    model = edge_model_name(SOUTH)
    core.publish(tmp_path, SOUTH, "v000005")
    client = core.client(SOUTH, TOKENS[SOUTH])
    threading.Timer(1.0, core.publish, (tmp_path, SOUTH, "v000006")).start()

    started = time.monotonic()
    newer = client.newest(model, after="v000005", wait_s=20.0)

    assert newer is not None and newer.version == "v000006"
    assert time.monotonic() - started < 15.0


def test_a_version_an_event_named_is_handed_out_at_once_though_the_door_just_looked(
    core: Core, tmp_path: Path
) -> None:
    model = edge_model_name(NORTH)
    core.publish(tmp_path, NORTH, "v000011")
    ready = write_version(tmp_path / "v000012", NORTH, "v000012")
    client = core.client(NORTH, TOKENS[NORTH])
    assert client.newest(model) is not None  # the door has just looked: v000011

    upload_version(core.store, core.layout.model_prefix(model, "v000012"), ready)
    newer = client.newest(model, after="v000011", wait_s=0.5, expect="v000012")  # well within refresh_s

    assert newer is not None and newer.version == "v000012"


def test_a_long_poll_with_nothing_newer_ends_with_no_content(core: Core, tmp_path: Path) -> None:
    core.publish(tmp_path, SOUTH, "v000009")
    assert (
        core.client(SOUTH, TOKENS[SOUTH]).newest(edge_model_name(SOUTH), after="v000009", wait_s=1.0) is None
    )


def test_the_front_door_speaks_only_tls_checked_against_the_core_s_ca(core: Core) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{core.url}/healthz", verify=True)  # the system's CAs do not know the local one
    plain = core.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/healthz", timeout=5)
    assert httpx.get(f"{core.url}/healthz", verify=client_context(core.settings.ca_file)).status_code == 200


# last: it publishes versions newer than every other test's
def test_the_door_keeps_copies_of_the_newest_versions_only(core: Core, tmp_path: Path) -> None:
    model = edge_model_name(SOUTH)
    client = core.client(SOUTH, TOKENS[SOUTH])
    for number in range(31, 36):
        version = f"v{number:06d}"
        core.publish(tmp_path, SOUTH, version)
        client.download(model, version, CATALOGUE_FILE, lambda _: None)

    cached = sorted(d.name for d in (core.settings.state_dir / "door" / "cache" / model).iterdir())
    assert cached == ["v000033", "v000034", "v000035"]
