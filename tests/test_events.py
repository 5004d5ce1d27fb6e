"""Events are CloudEvents 1.0 with typed data; anything else is refused with one clear reason."""

from __future__ import annotations

import json

import pytest

from foundation import events
from foundation.errors import InvalidInput, MalformedEvent
from foundation.events import ModelPublished
from testkit.samples import READY


def test_training_data_ready_round_trips_as_a_structured_cloudevent() -> None:
    message = events.to_message(READY, "/edgecore/receiver")
    envelope = json.loads(message.value)
    assert envelope["specversion"] == "1.0"
    assert envelope["type"] == events.TRAINING_DATA_READY
    assert message.key == "hypermarket"
    parsed = events.parse(message.value, message.key)
    assert parsed.data == READY
    assert parsed.source == "/edgecore/receiver"


def test_model_published_round_trips() -> None:
    published = ModelPublished(
        model="boutique-products",
        version="v000002",
        registry_uri="s3://edgecore-models/models/boutique-products/v000002/",
        edges=["boutique"],
        files={"model.tflite": "1" * 64},
        labels=["PERFUME-N5"],
        metrics={"accuracy": 0.97},
    )
    assert events.parse(events.to_message(published, "/edgecore/publish").value).data == published


def _envelope(**overrides: object) -> bytes:
    message = json.loads(events.to_message(READY, "/t").value)
    message.update(overrides)
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty record"),
        (b"not json at all", "not a structured CloudEvent"),
        (b"[1, 2, 3]", "not a structured CloudEvent"),
        (_envelope(specversion="0.3"), "specversion"),
        (_envelope(type="com.example.other"), "unknown event type"),
        (_envelope(data={**READY.model_dump(), "labels": ["bad sku"]}), "labels.0"),
        (_envelope(data={**READY.model_dump(), "schema_version": 9}), "schema_version"),
        (_envelope(data={k: v for k, v in READY.model_dump().items() if k != "version"}), "version"),
        (_envelope(data={**READY.model_dump(), "dataset": "../x"}), "dataset"),
    ],
    ids=[
        "empty",
        "garbage",
        "json-array",
        "old-spec",
        "unknown-type",
        "bad-sku",
        "future-schema",
        "missing-field",
        "traversal-name",
    ],
)
def test_malformed_records_raise_one_clear_error(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        events.parse(raw)


def test_oversized_records_are_refused_before_parsing() -> None:
    with pytest.raises(InvalidInput, match="exceeds"):
        events.parse(b"{" + b" " * 2048 + b"}", max_bytes=1024)


def _without(attribute: str) -> bytes:
    message = json.loads(events.to_message(READY, "/t").value)
    del message[attribute]
    return json.dumps(message).encode()


@pytest.mark.parametrize("attribute", ["id", "specversion", "source", "type", "time"])
def test_an_envelope_missing_a_required_attribute_is_malformed_not_filled_in(attribute: str) -> None:
    with pytest.raises(MalformedEvent, match=f"attribute.*{attribute}"):
        events.parse(_without(attribute))
