"""Event contracts: CloudEvents 1.0 (structured JSON) on Kafka.

Two events drive the loop: ``training-data-ready`` (a new immutable dataset version
exists) and ``model-published`` (a model version passed the gate and waits in the
registry for its edges to pull it).  Their ``data`` are pydantic models carrying a ``schema_version`` so
consumers can refuse what they do not understand.  ``parse`` is the only way in: it
returns a typed :class:`Envelope` or raises :class:`MalformedEvent` with one clear
reason, which the consumer puts on the dead-letter topic.  It is strict: an envelope
missing ``specversion``, ``id``, ``source``, ``type`` or ``time`` is malformed (the
CloudEvents library would fill some in, and a made-up id defeats deduplication).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_structured, to_structured
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import MalformedEvent, PayloadTooLarge, validation_reason
from foundation.layout import NAME_RE, SENSOR_RE, SKU_RE, VERSION_RE

SCHEMA_VERSION = 1
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time")
TRAINING_DATA_READY = "io.edgecore.training-data-ready"
MODEL_PUBLISHED = "io.edgecore.model-published"
ANOMALY_DETECTED = "io.edgecore.anomaly-detected"

Name = Annotated[str, Field(pattern=NAME_RE.pattern)]
Sku = Annotated[str, Field(pattern=SKU_RE.pattern)]
Label = Annotated[str, Field(pattern=f"{SKU_RE.pattern}|{SENSOR_RE.pattern}")]
"""What a model tells apart: products (SKUs) or, for a sensor model, the sensors it reads."""
Version = Annotated[str, Field(pattern=VERSION_RE.pattern)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1


class TrainingDataReady(_Data):
    """A complete, immutable dataset version is in the training bucket."""

    dataset: Name
    version: Version
    edge: Name
    labels: list[Sku] = Field(min_length=1, max_length=10_000)
    object_count: int = Field(ge=1)
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field(min_length=1, max_length=1024)
    manifest_sha256: Sha256

    @property
    def key(self) -> str:
        return self.dataset


class ModelPublished(_Data):
    """A model version passed the quality gate and is in the core's registry for these edges to pull."""

    model: Name
    version: Version
    registry_uri: str = Field(pattern=r"^s3://")
    edges: list[Name] = Field(min_length=1, max_length=10_000)
    files: dict[str, Sha256] = Field(min_length=1)
    labels: list[Label] = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    datasets: list[str] = Field(default_factory=list)
    modelcar: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    """Digest of the version's modelcar, where publish pushed one (edges pull it through the front door)."""

    @property
    def key(self) -> str:
        return self.model


class AnomalyDetected(_Data):
    """A machine at an edge raised an alarm: K of its last N sensor windows were anomalous."""

    edge: Name
    machine: Name
    model: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=32)
    window_end: datetime
    """The time of the reading that completed the window which raised the alarm (the device's clock)."""
    anomalous: int = Field(ge=1)
    of: int = Field(ge=1)
    error: float = Field(ge=0)
    threshold: float = Field(gt=0)
    """The autoencoder's reconstruction error of the raising window, and its threshold."""
    texture_distance: float | None = Field(default=None, ge=0)
    texture_threshold: float | None = Field(default=None, gt=0)
    """The texture detector's distance and threshold, where the model has one (either may raise it)."""
    window_key: str = Field(default="", max_length=1024)
    """Where the edge keeps the window for review (its own bucket); empty when it could not be kept."""

    @property
    def key(self) -> str:
        return f"{self.edge}/{self.machine}"


EventData = TrainingDataReady | ModelPublished | AnomalyDetected
_TYPES: dict[str, type[TrainingDataReady] | type[ModelPublished] | type[AnomalyDetected]] = {
    TRAINING_DATA_READY: TrainingDataReady,
    MODEL_PUBLISHED: ModelPublished,
    ANOMALY_DETECTED: AnomalyDetected,
}
_TYPE_OF = {cls: name for name, cls in _TYPES.items()}


class Envelope(BaseModel):
    """The CloudEvents attributes edgecore uses, and the typed data."""

    id: str
    source: str
    type: str
    time: datetime
    data: EventData


def to_message(data: EventData, source: str) -> KafkaMessage:
    """A structured-mode CloudEvent, keyed by dataset or model name (one partition keeps order)."""
    event = CloudEvent(
        {
            "id": str(uuid.uuid4()),
            "source": source,
            "type": _TYPE_OF[type(data)],
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "dataschema": f"https://edgecore.io/schemas/{_TYPE_OF[type(data)]}/v{SCHEMA_VERSION}",
            "partitionkey": data.key,
        },
        data.model_dump(mode="json"),
    )
    return to_structured(event)


def parse(value: bytes | None, key: bytes | None = None, max_bytes: int = 1_048_576) -> Envelope:
    """Decode one Kafka record into a typed event, or raise :class:`MalformedEvent`."""
    if value is None or not value:
        raise MalformedEvent("empty record")
    if len(value) > max_bytes:
        raise PayloadTooLarge(f"record of {len(value)} bytes exceeds the {max_bytes}-byte limit")
    try:
        envelope = json.loads(value)
    except ValueError as exc:
        raise MalformedEvent(f"not a structured CloudEvent: invalid JSON ({exc})") from exc
    if not isinstance(envelope, dict):
        raise MalformedEvent(f"not a structured CloudEvent: JSON {type(envelope).__name__}, not an object")
    missing = [
        name for name in REQUIRED_ATTRIBUTES if not isinstance(envelope.get(name), str) or not envelope[name]
    ]
    if missing:
        raise MalformedEvent(f"not a CloudEvent: attribute(s) {', '.join(missing)} missing or empty")
    try:
        event = from_structured(KafkaMessage({}, key, value), envelope_unmarshaller=lambda _: envelope)
    except (GenericException, ValueError, TypeError, KeyError) as exc:
        raise MalformedEvent(f"not a structured CloudEvent: {exc}") from exc
    attrs = event.get_attributes()
    if attrs.get("specversion") != "1.0":
        raise MalformedEvent(f"unsupported CloudEvents specversion {attrs.get('specversion')!r}")
    event_type = attrs.get("type")
    model = _TYPES.get(str(event_type))
    if model is None:
        raise MalformedEvent(f"unknown event type {event_type!r}")
    raw = event.get_data()
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise MalformedEvent(f"{event_type}: data is not JSON") from exc
    try:
        data = model.model_validate(raw)
        return Envelope.model_validate(
            {
                "id": attrs.get("id"),
                "source": attrs.get("source"),
                "type": event_type,
                "time": attrs.get("time"),
                "data": data,
            }
        )
    except ValidationError as exc:
        known = (Envelope, TrainingDataReady, ModelPublished, AnomalyDetected)
        raise MalformedEvent(f"{event_type}: {validation_reason(exc, known)}") from exc
