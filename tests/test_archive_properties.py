"""Properties of the set archive reader and of the listener's record parsing (hypothesis).

Bounded for CI: at most 100 examples per property, no deadline.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sync.uplink.archive import (
    END_OF_ARCHIVE,
    Limits,
    Member,
    TarReader,
    check_member_name,
    member_header,
    padding,
)
from foundation import events
from foundation.errors import InvalidInput
from foundation.layout import IMAGE_ID_RE, SKU_RE
from pipelines.listener import parse_s3_record

BOUNDED = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(max_members=50, max_member_bytes=4096, max_total_bytes=64 * 1024)

skus = st.from_regex(SKU_RE, fullmatch=True)
image_ids = st.from_regex(IMAGE_ID_RE, fullmatch=True).filter(lambda s: ".." not in s and len(s) < 60)
Items = list[tuple[str, str, str, bytes]]
members = st.lists(
    st.tuples(skus, image_ids, st.sampled_from(["jpg", "png"]), st.binary(min_size=1, max_size=2000)),
    min_size=1,
    max_size=8,
)


def _archive(items: list[tuple[str, str, str, bytes]]) -> bytes:
    parts = []
    for sku, image_id, ext, data in items:
        parts += [member_header(f"{sku}/{image_id}.{ext}", len(data)), data, padding(len(data))]
    return b"".join([*parts, END_OF_ARCHIVE])


def _feed(raw: bytes, cuts: list[int]) -> list[Member]:
    reader = TarReader(LIMITS)
    out = []
    start = 0
    for cut in [*sorted({c % (len(raw) + 1) for c in cuts}), len(raw)]:
        out += reader.feed(raw[start:cut])
        start = cut
    reader.close()
    return out


@BOUNDED
@given(members, st.lists(st.integers(min_value=0), max_size=20))
def test_a_written_set_reads_back_identically_however_the_stream_is_cut(
    items: Items, cuts: list[int]
) -> None:
    got = _feed(_archive(items), cuts)
    assert [(m.sku, m.image_id, m.ext, m.data) for m in got] == items


@BOUNDED
@given(members, st.lists(st.integers(min_value=0), max_size=20))
def test_python_tarfile_archives_of_the_same_images_read_the_same(items: Items, cuts: list[int]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for sku, image_id, ext, data in items:
            info = tarfile.TarInfo(f"{sku}/{image_id}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    got = _feed(buf.getvalue(), cuts)
    assert [(m.sku, m.image_id, m.ext, m.data) for m in got] == items


@BOUNDED
@given(members, st.data())
def test_a_corrupted_archive_is_refused_cleanly_or_yields_only_safe_bounded_members(
    items: Items, data: st.DataObject
) -> None:
    raw = bytearray(_archive(items))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        got = _feed(bytes(raw), [])
    except InvalidInput:
        return
    for member in got:
        assert len(member.data) <= LIMITS.max_member_bytes
        assert check_member_name(member.name) == (member.sku, member.image_id, member.ext)


@BOUNDED
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_crash_the_reader(raw: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        _feed(raw, [len(raw) // 2])


@BOUNDED
@given(st.text(max_size=80))
def test_a_member_name_is_either_refused_or_stays_inside_its_label_folder(name: str) -> None:
    try:
        sku, _image_id, ext = check_member_name(name)
    except InvalidInput:
        return
    assert name == f"{sku}/{name.split('/')[1]}"
    assert not name.startswith("/") and ".." not in name.split("/")
    assert name.count("/") == 1 and ext in ("jpg", "png")


# -- event parsing ----------------------------------------------------------------------
names = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}[a-z0-9]\Z")
versions = st.integers(1, 999_999).map(lambda n: f"v{n:06d}")


@BOUNDED
@given(names, versions, st.lists(skus, min_size=1, max_size=5), st.integers(1, 10_000))
def test_a_training_data_ready_event_round_trips(
    dataset: str, version: str, labels: list[str], count: int
) -> None:
    data = events.TrainingDataReady(
        dataset=dataset,
        version=version,
        edge=dataset,
        labels=labels,
        object_count=count,
        bucket="edgecore-training",
        prefix=f"datasets/{dataset}/{version}/",
        manifest_sha256="0" * 64,
    )
    message = events.to_message(data, "edgecore/test")
    key = message.key.encode() if isinstance(message.key, str) else message.key
    value = message.value.encode() if isinstance(message.value, str) else message.value
    assert events.parse(value, key).data == data


@BOUNDED
@given(st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode)))
def test_arbitrary_records_are_malformed_events_never_crashes(raw: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        events.parse(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@BOUNDED
@given(json_values)
def test_arbitrary_json_is_ignored_or_refused_as_an_s3_notification(value: object) -> None:
    try:
        result = parse_s3_record(json.dumps(value).encode(), "edgecore-training", 1 << 20)
    except InvalidInput:
        return
    assert result is None


@BOUNDED
@given(names, versions, st.sampled_from(["manifest.json", "images/ABC/x.jpg", "manifest.json.tmp"]))
def test_only_created_dataset_manifests_are_dataset_versions(dataset: str, version: str, tail: str) -> None:
    key = f"datasets/{dataset}/{version}/{tail}".replace("/", "%2F")
    record = {
        "EventName": "s3:ObjectCreated:Put",
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "edgecore-training"}, "object": {"key": key}},
            }
        ],
    }
    result = parse_s3_record(json.dumps(record).encode(), "edgecore-training", 1 << 20)
    if tail == "manifest.json":
        assert result is not None and (result.dataset, result.version) == (dataset, version)
        assert result.prefix == f"datasets/{dataset}/{version}/"
    else:
        assert result is None
