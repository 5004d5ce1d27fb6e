"""The S3 layout: every bucket name and object key edgecore reads or writes.

No other module formats a key by hand, so the layout can be read (and changed) here::

    <training_bucket>/datasets/<dataset>/<version>/images/<label>/<sha256>.<ext>   (one object per image)
    <training_bucket>/datasets/<dataset>/shards/<id>.tar              (or: a shipped set, one tar)
    <training_bucket>/datasets/<edge>-telemetry/<version>/telemetry/<machine>.csv  (machine telemetry)
    <training_bucket>/datasets/<dataset>/<version>/manifest.json     (written last)
    <training_bucket>/claims/datasets/<dataset>/<version>.json         (version allocation)
    <training_bucket>/claims/sets/<dataset>/<set-digest>.json          (shipped set -> version)
    <models_bucket>/models/<model>/<version>/<file>                   (registry)
    <models_bucket>/models/<model>/<version>/manifest.json            (sha256 per file + metrics)
    <models_bucket>/fleet/<edge>/report.json                          (what the edge serves, how it fares)
    <edge_bucket_prefix><edge>/incoming/<sku>/<image-id>.<ext>         (device uploads)
    <edge_bucket_prefix><edge>/hard-examples/<sku>/<image-id>.<ext>    (labelled, ship next round)
    <edge_bucket_prefix><edge>/unrecognized/<yyyy-mm-dd>/<id>.jpg|.json (captures flagged unsure)
    <edge_bucket_prefix><edge>/anomalies/<machine>/<yyyy-mm-dd>/<id>.json (windows that raised an alarm)
    <edge_bucket_prefix><edge>/anomalies/<machine>/<yyyy-mm-dd>/<id>.verdict.json (staff: confirmed/dismissed)
    <edge_bucket_prefix><edge>/models/<model>/<version>/<file>          (delivered model copies)
    <edge_bucket_prefix><edge>/models/<model>/serving.json              (version the predictor serves)
    <edge_bucket_prefix><edge>/catalogue.json                           (what the edge sells now)
    <edge_bucket_prefix><edge>/catalogue-changes/<stamp>-<id>.json      (every add or retire, by whom)
    <training_bucket>/catalogues/<edge>/catalogue.json                 (the core's copy, merged from sets)
    <training_bucket>/catalogues/<edge>/changes/<stamp>-<id>.json
    <training_bucket>/listener/<consumer-group>/ledger.json            (versions seen, runs launched)

Dataset and model versions are zero-padded integers (``v000001``) so that the
lexical order of keys is the version order.  Every path segment is validated against a
strict pattern: names that reach a key come from devices and Kafka records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from foundation.errors import InvalidInput

if TYPE_CHECKING:  # steps that only need key names and file names skip pydantic-settings' import
    from foundation.settings import BucketSettings

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
"""Edge ids, dataset and model names: lowercase DNS-label style, usable in bucket names."""

SKU_RE = re.compile(r"^[A-Z0-9](?:[A-Z0-9-]{1,30}[A-Z0-9])$")
"""Product SKUs (labels): uppercase letters, digits and inner dashes, 3-32 characters."""

SENSOR_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
"""A sensor's name: a telemetry column, and a sensor model's label."""
VERSION_RE = re.compile(r"^v(\d{6})$")
VERDICT_SUFFIX = ".verdict.json"
IMAGE_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
IMAGE_EXTENSIONS = frozenset({"jpg", "png"})
GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MANIFEST = "manifest.json"
SHARD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
SHARDS_BESIDE_VERSIONS = "dataset"
"""A dataset manifest's ``shard_root`` when its shards live at ``datasets/<name>/shards/``
(sets shipped since versions are claimed on completion); before, inside the version."""

# Files of an exported model version (all listed, with sha256, in its manifest).
TFLITE_FILE = "model.tflite"
SAVED_MODEL_DIR = "saved_model"
LABELS_FILE = "labels.json"
CATALOGUE_FILE = "catalogue.json"
MODEL_CARD_FILE = "model_card.md"
TELEMETRY_DIR = "telemetry"
"""A telemetry dataset version's files: ``telemetry/<machine>.csv`` (``foundation.telemetry``)."""


def check_name(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(f"invalid {what}: use 1-48 lowercase letters, digits and inner dashes")
    return value


def check_sku(value: str) -> str:
    if not isinstance(value, str) or not SKU_RE.match(value):
        raise InvalidInput("invalid SKU: use 3-32 uppercase letters, digits and inner dashes")
    return value


def check_image_id(value: str) -> str:
    if not isinstance(value, str) or not IMAGE_ID_RE.match(value) or ".." in value:
        raise InvalidInput("invalid image id: letters, digits, dots, dashes and underscores")
    return value


def check_extension(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext == "jpeg":
        ext = "jpg"
    if ext not in IMAGE_EXTENSIONS:
        raise InvalidInput(f"unsupported image extension {ext!r}: use one of {sorted(IMAGE_EXTENSIONS)}")
    return ext


def edge_model_name(edge: str) -> str:
    """Each edge gets its own model, trained for its own catalogue."""
    return f"{check_name(edge, 'edge id')}-products"


def sensor_model_name(edge: str) -> str:
    """The edge's sensor model (the anomaly use case), beside its product model."""
    return f"{check_name(edge, 'edge id')}-sensors"


def edge_models(edge: str) -> tuple[str, str]:
    """Every model an edge may be delivered (and nothing else): its products' and its sensors'."""
    return edge_model_name(edge), sensor_model_name(edge)


TELEMETRY_SUFFIX = "-telemetry"


def telemetry_dataset(edge: str) -> str:
    """Where an edge's machine telemetry is versioned, beside its photos (dataset ``<edge>``)."""
    return f"{check_name(edge, 'edge id')}{TELEMETRY_SUFFIX}"


def dataset_use_case(dataset: str) -> tuple[str, str]:
    """(use case, edge) a dataset belongs to: ``<edge>-telemetry`` is sensors, any other name is an
    edge's photos (the receiver names each edge's dataset after the edge)."""
    if dataset.endswith(TELEMETRY_SUFFIX) and len(dataset) > len(TELEMETRY_SUFFIX):
        return "sensors", dataset.removesuffix(TELEMETRY_SUFFIX)
    return "products", dataset


def format_version(number: int) -> str:
    if number < 1 or number > 999_999:
        raise InvalidInput(f"version number {number} out of range 1..999999")
    return f"v{number:06d}"


def parse_version(version: str) -> int:
    match = VERSION_RE.match(version) if isinstance(version, str) else None
    if not match:
        raise InvalidInput(f"invalid version {version!r}: expected v followed by six digits")
    return int(match.group(1))


@dataclass(frozen=True)
class Location:
    """A bucket and key; ``uri`` is what KServe's storage initializer accepts."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> Location:
        """The object ``name`` below this prefix (a version folder's file)."""
        return Location(self.bucket, f"{self.key}{name}")

    @classmethod
    def parse(cls, uri: str) -> Location:
        """``s3://bucket/key`` back into a location."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket:
            raise InvalidInput(f"not an s3:// URI: {uri!r}")
        return cls(bucket, key)


@dataclass(frozen=True)
class CatalogueHome:
    """Where one copy of an edge's catalogue and the records of its changes live."""

    edge: str
    catalogue: Location
    changes: Location
    """The prefix of the change records, one object each."""

    def change(self, change_id: str) -> Location:
        return Location(self.changes.bucket, f"{self.changes.key}{check_image_id(change_id)}.json")


@dataclass(frozen=True)
class VersionedName:
    """Where one dataset's or model's versions live, and where their numbers are claimed."""

    versions: Location
    claims: Location

    def claim(self, version: str) -> Location:
        parse_version(version)
        return Location(self.claims.bucket, f"{self.claims.key}{version}.json")


class Layout:
    """Builds the buckets and keys of one deployment (bucket names come from settings)."""

    def __init__(self, buckets: BucketSettings) -> None:
        self.training_bucket = buckets.training
        self.models_bucket = buckets.models
        self._edge_bucket_prefix = buckets.edge_prefix

    # -- edges -------------------------------------------------------------------------
    def edge_bucket(self, edge: str) -> str:
        return self._edge_bucket_prefix + check_name(edge, "edge id")

    def incoming_prefix(self, edge: str, sku: str | None = None) -> Location:
        key = "incoming/" if sku is None else f"incoming/{check_sku(sku)}/"
        return Location(self.edge_bucket(edge), key)

    def incoming_image(self, edge: str, sku: str, image_id: str, ext: str) -> Location:
        return Location(
            self.edge_bucket(edge),
            f"incoming/{check_sku(sku)}/{check_image_id(image_id)}.{check_extension(ext)}",
        )

    def hard_example(self, edge: str, sku: str, image_id: str, ext: str) -> Location:
        return Location(
            self.edge_bucket(edge),
            f"hard-examples/{check_sku(sku)}/{check_image_id(image_id)}.{check_extension(ext)}",
        )

    def hard_examples_prefix(self, edge: str) -> Location:
        return Location(self.edge_bucket(edge), "hard-examples/")

    def unrecognized(self, edge: str, day: date, capture_id: str) -> tuple[Location, Location]:
        """The image and its prediction record of one capture flagged unsure."""
        base = f"unrecognized/{day.isoformat()}/{check_image_id(capture_id)}"
        bucket = self.edge_bucket(edge)
        return Location(bucket, base + ".jpg"), Location(bucket, base + ".json")

    def unrecognized_prefix(self, edge: str) -> Location:
        return Location(self.edge_bucket(edge), "unrecognized/")

    def anomaly_window(self, edge: str, machine: str, day: date, window_id: str) -> Location:
        """A sensor window that raised a machine's alarm, kept at the edge for an operator to review."""
        machine = check_name(machine, "machine id")
        key = f"anomalies/{machine}/{day.isoformat()}/{check_image_id(window_id)}.json"
        return Location(self.edge_bucket(edge), key)

    def anomaly_verdict(self, edge: str, machine: str, day: date, window_id: str) -> Location:
        """What staff said of an alarm's window: confirmed (a real fault) or dismissed (a false alarm)."""
        window = self.anomaly_window(edge, machine, day, window_id)
        return Location(window.bucket, window.key.removesuffix(".json") + VERDICT_SUFFIX)

    def anomalies_prefix(self, edge: str) -> Location:
        return Location(self.edge_bucket(edge), "anomalies/")

    def edge_model_prefix(self, edge: str, model: str, version: str) -> Location:
        return Location(self.edge_bucket(edge), self._model_key(model, version))

    def edge_models_prefix(self, edge: str, model: str) -> Location:
        return Location(self.edge_bucket(edge), f"models/{check_name(model, 'model name')}/")

    def edge_catalogue_home(self, edge: str) -> CatalogueHome:
        """The store's own catalogue and its change records, in the edge bucket (what it sells)."""
        bucket = self.edge_bucket(edge)
        return CatalogueHome(edge, Location(bucket, CATALOGUE_FILE), Location(bucket, "catalogue-changes/"))

    def core_catalogue_home(self, edge: str) -> CatalogueHome:
        """The core's copy of an edge's catalogue, merged from its shipped sets and the core's own changes."""
        folder = f"catalogues/{check_name(edge, 'edge id')}/"
        return CatalogueHome(
            edge,
            Location(self.training_bucket, folder + CATALOGUE_FILE),
            Location(self.training_bucket, folder + "changes/"),
        )

    def edge_model_pointer(self, edge: str, model: str) -> Location:
        """The version the edge predictor should serve (``foundation.pointer.ModelPointer``)."""
        return Location(self.edge_bucket(edge), f"models/{check_name(model, 'model name')}/serving.json")

    # -- datasets ----------------------------------------------------------------------
    def listener_ledger(self, group_id: str) -> Location:
        """The training listener's ledger: one per consumer group, beside the datasets it launches."""
        if not GROUP_RE.match(group_id):
            raise InvalidInput(f"consumer group {group_id[:64]!r}: use letters, digits, '.', '_' and '-'")
        return Location(self.training_bucket, f"listener/{group_id}/ledger.json")

    def datasets_root(self) -> Location:
        """Every dataset (where set uploads in progress live)."""
        return Location(self.training_bucket, "datasets/")

    def datasets_prefix(self, dataset: str) -> Location:
        return Location(self.training_bucket, f"datasets/{check_name(dataset, 'dataset name')}/")

    def dataset_prefix(self, dataset: str, version: str) -> Location:
        parse_version(version)
        return Location(self.training_bucket, f"datasets/{check_name(dataset, 'dataset name')}/{version}/")

    def dataset_image(self, dataset: str, version: str, sku: str, sha256: str, ext: str) -> Location:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise InvalidInput(f"invalid sha256 {sha256!r}")
        prefix = self.dataset_prefix(dataset, version)
        return Location(prefix.bucket, f"{prefix.key}images/{check_sku(sku)}/{sha256}.{check_extension(ext)}")

    def dataset_manifest(self, dataset: str, version: str) -> Location:
        prefix = self.dataset_prefix(dataset, version)
        return Location(prefix.bucket, prefix.key + MANIFEST)

    def dataset_file(self, dataset: str, version: str, path: str) -> Location:
        """A file a dataset manifest lists (an image or a shard), by its path in the version."""
        prefix = self.dataset_prefix(dataset, version)
        return Location(prefix.bucket, prefix.key + check_relative_path(path))

    @staticmethod
    def shard_path(shard_id: str) -> str:
        """A tar shard's path inside its version; ids are unique per upload attempt.

        A unique name keeps a shard immutable: two attempts of the same set never
        overwrite each other's bytes, and only the shard the manifest names is read.
        """
        if not SHARD_ID_RE.match(shard_id):
            raise InvalidInput(f"invalid shard id {shard_id!r}: 32 lowercase hex digits")
        return f"shards/{shard_id}.tar"

    def dataset_shard(self, dataset: str, shard: str) -> Location:
        """A shipped set's tar shard, beside the dataset's versions (written before its version exists)."""
        return Location(self.training_bucket, f"datasets/{check_name(dataset, 'dataset name')}/{shard}")

    def dataset_claims_prefix(self, dataset: str) -> Location:
        """Version numbers claimed by receivers (a claim without a manifest is a gap)."""
        return Location(self.training_bucket, f"claims/datasets/{check_name(dataset, 'dataset name')}/")

    def dataset_versions(self, dataset: str) -> VersionedName:
        return VersionedName(self.datasets_prefix(dataset), self.dataset_claims_prefix(dataset))

    def dataset_set_marker(self, dataset: str, set_digest: str) -> Location:
        """Which version a shipped set (by content digest) went to: retransmissions land here."""
        if not re.fullmatch(r"[0-9a-f]{64}", set_digest):
            raise InvalidInput(f"invalid set digest {set_digest!r}")
        return Location(
            self.training_bucket, f"claims/sets/{check_name(dataset, 'dataset name')}/{set_digest}.json"
        )

    # -- model registry ----------------------------------------------------------------
    def models_prefix(self, model: str) -> Location:
        return Location(self.models_bucket, f"models/{check_name(model, 'model name')}/")

    def model_prefix(self, model: str, version: str) -> Location:
        return Location(self.models_bucket, self._model_key(model, version))

    def model_file(self, model: str, version: str, name: str) -> Location:
        prefix = self.model_prefix(model, version)
        return Location(prefix.bucket, prefix.key + check_relative_path(name))

    def model_manifest(self, model: str, version: str) -> Location:
        return self.model_file(model, version, MANIFEST)

    def model_claims_prefix(self, model: str) -> Location:
        """Version numbers claimed by publishers (a claim without a manifest is a gap)."""
        return Location(self.models_bucket, f"claims/models/{check_name(model, 'model name')}/")

    def model_versions(self, model: str) -> VersionedName:
        return VersionedName(self.models_prefix(model), self.model_claims_prefix(model))

    def edge_report(self, edge: str) -> Location:
        """An edge's newest report (``foundation.edge_report``), written by the front door."""
        return Location(self.models_bucket, f"fleet/{check_name(edge, 'edge id')}/report.json")

    def edge_reports_prefix(self) -> Location:
        return Location(self.models_bucket, "fleet/")

    @staticmethod
    def _model_key(model: str, version: str) -> str:
        parse_version(version)
        return f"models/{check_name(model, 'model name')}/{version}/"


def check_relative_path(name: str) -> str:
    """A file path inside a model or dataset version: relative, no dot segments."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or not all(re.fullmatch(r"[A-Za-z0-9_.@+-]{1,128}", p) for p in parts)
    ):
        raise InvalidInput(f"invalid relative path {name!r}")
    return name


def version_of_key(key: str, prefix: str) -> str | None:
    """The ``vNNNNNN`` segment right after ``prefix`` in ``key``, if there is one."""
    if not key.startswith(prefix):
        return None
    head = key[len(prefix) :].split("/", 1)[0]
    return head if VERSION_RE.match(head) else None
