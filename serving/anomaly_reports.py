"""Where a raised alarm goes: an ``anomaly-detected`` event on Kafka (and, when one is set, the
same CloudEvent to a webhook, ``serving.alarm_webhook``), and its window kept at the edge.

The window is written to the edge's own bucket first (``Layout.anomaly_window``), so the
event can name it and an operator can review it and confirm or dismiss the alarm.  When
the alarm clears, the end of its last anomalous window is added to it: staff's verdict
covers the readings from the alarm's first window to then (``foundation.alarm_verdicts``),
not the normal running that cleared it.  An outage of either is
logged, never raised: the monitor must go on scoring.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from kafka.errors import KafkaError

from foundation.errors import EdgecoreError
from foundation.events import AnomalyDetected
from foundation.layout import Layout, Location
from foundation.messaging import EventProducer
from foundation.storage.objects import ObjectStorage
from serving.alarm_webhook import AlarmWebhook
from serving.sensor_monitor import Alarm

log = logging.getLogger(__name__)


class AnomalyReports:
    """An alarm sink of one edge and sensor model version."""

    def __init__(
        self,
        edge: str,
        model: str,
        version: str,
        threshold: float,
        texture_threshold: float | None,
        sensors: tuple[str, ...],
        store: ObjectStorage,
        layout: Layout,
        producer: EventProducer,
        topic: str,
        webhook: AlarmWebhook | None = None,
        standing: dict[str, Location] | None = None,
    ) -> None:
        """``standing``: each raised alarm's kept window, by machine; shared by the versions a gateway
        loads, since an alarm raised under one version may clear under the next."""
        self.edge, self.model, self.version, self.threshold = edge, model, version, threshold
        self.standing = {} if standing is None else standing
        self.sensors = sensors
        self.texture_threshold = texture_threshold
        self.store, self.layout = store, layout
        self.producer, self.topic = producer, topic
        self.webhook = webhook

    def raised(self, alarm: Alarm) -> None:
        change = alarm.change
        key = self._keep(alarm)
        event = AnomalyDetected(
            edge=self.edge,
            machine=change.machine,
            model=self.model,
            version=self.version,
            window_end=alarm.window_end,
            anomalous=change.anomalous,
            of=change.of,
            error=change.error,
            threshold=self.threshold,
            texture_distance=alarm.texture_distance,
            texture_threshold=self.texture_threshold,
            window_key=key,
        )
        record = self.producer.record(event)
        if self.webhook is not None:
            self.webhook.send(record[0])  # first: a Kafka outage must not hold the webhook back
        try:
            self.producer.send_raw(self.topic, *record, timeout_s=10.0)
        except (EdgecoreError, KafkaError) as exc:
            log.warning("machine %s: alarm raised but not announced (%s)", change.machine, exc)
            return
        log.warning(
            "machine %s: alarm raised (%d of %d windows anomalous)",
            change.machine,
            change.anomalous,
            change.of,
        )

    def cleared(self, machine: str, at: datetime, flagged_until: datetime | None) -> None:
        loc = self.standing.pop(machine, None)
        if loc is None:  # its window was not kept, or the gateway restarted since
            return
        try:
            body = json.loads(self.store.get_bytes(loc, max_bytes=1 << 20))
            body["cleared_at"] = at.isoformat()
            if flagged_until is not None:
                body["anomalous_until"] = flagged_until.isoformat()
            self.store.put_bytes(loc, json.dumps(body).encode(), "application/json")
        except (EdgecoreError, ValueError) as exc:
            log.warning("machine %s: the alarm's clearing was not kept with its window (%s)", machine, exc)

    def _keep(self, alarm: Alarm) -> str:
        end = alarm.window_end  # ids sort by the time of day, as captures' do: newest last
        loc = self.layout.anomaly_window(
            self.edge, alarm.change.machine, end.date(), f"{end:%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        )
        body = {
            "machine": alarm.change.machine,
            "model": self.model,
            "version": self.version,
            "window_end": alarm.window_end.isoformat(),
            "span_start": alarm.span_start.isoformat() if alarm.span_start else None,
            "error": alarm.change.error,
            "threshold": self.threshold,
            "texture_distance": alarm.texture_distance,
            "texture_threshold": self.texture_threshold,
            "sensors": list(self.sensors),
            "readings": alarm.window.tolist(),
        }
        try:
            self.store.put_bytes(loc, json.dumps(body).encode(), "application/json")
        except EdgecoreError as exc:
            log.warning(
                "machine %s: the window that raised the alarm was not kept (%s)", alarm.change.machine, exc
            )
            return ""
        self.standing[alarm.change.machine] = loc
        return loc.key
