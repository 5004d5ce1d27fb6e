"""One MQTT subscription of the gateway, worked through in arrival order by a thread of its own.

The gateway's image intake and its sensor intake each log in to the store's broker with
a login (and so a client id and persistent session) of their own: a slow image store
never holds up readings, and each acknowledges its own messages in the order they came,
as MQTT requires.  A message is acknowledged (manual PUBACK) only once it is handled, so
what the broker holds unacknowledged when the gateway stops is delivered again.  The
network thread only queues (bounded: when full it waits, back-pressure on the broker).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from foundation.errors import ServiceUnavailable

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps undelivered messages for a gateway that is down: a week."""
QUEUE_LIMIT = 64
"""Messages received but not yet handled; when full, the network thread waits (back-pressure)."""


@dataclass(frozen=True)
class Received:
    mid: int
    qos: int
    topic: str
    payload: bytes
    content_type: str | None
    response_topic: str | None
    correlation: bytes | None


class QueuedSubscriber:
    """Subscribes ``login`` to ``topic``; :meth:`handle` each message in order, then acknowledge it."""

    def __init__(self, edge: str, host: str, port: int, login: str, password: str, topic: str) -> None:
        self.edge = edge
        self.host, self.port = host, port
        self.topic = topic
        self._work: queue.Queue[Received | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._worker = threading.Thread(target=self._in_order, name=f"mqtt-{login}", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=login, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.username_pw_set(login, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def handle(self, item: Received) -> bool:
        """Handle one message; False to leave it unacknowledged (stopping: it is delivered again)."""
        raise NotImplementedError

    # -- life cycle ---------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (resuming the session) and wait until subscribed."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._worker.start()
        try:
            self.client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=properties)
        except OSError as exc:
            raise ServiceUnavailable(
                f"edge {self.edge}: MQTT broker {self.host}:{self.port} unreachable ({exc})"
            ) from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise ServiceUnavailable(
                f"edge {self.edge}: not subscribed on {self.host}:{self.port} in {timeout_s:.0f}s"
            )
        log.info("MQTT intake of edge %s on %s:%d, topic %s", self.edge, self.host, self.port, self.topic)

    def stop(self) -> None:
        """Finish the message being handled; the rest stays unacknowledged at the broker for next time."""
        self._stop.set()
        self.client.disconnect()  # first: nothing new arrives, the broker keeps what is unacknowledged
        self.client.loop_stop()
        with contextlib.suppress(queue.Full):  # a full queue: the worker sees the stop flag instead
            self._work.put_nowait(None)
        if self._worker.is_alive():
            self._worker.join(timeout=30)

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT connect of edge %s refused: %s", self.edge, reason)
            return
        client.subscribe(self.topic, qos=1)
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = message.properties
        received = Received(
            mid=message.mid,
            qos=message.qos,
            topic=message.topic,
            payload=bytes(message.payload),
            content_type=getattr(props, "ContentType", None),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation=getattr(props, "CorrelationData", None),
        )
        while not self._stop.is_set():
            try:
                self._work.put(received, timeout=0.5)
                return
            except queue.Full:
                continue

    # -- the worker --------------------------------------------------------------------
    def _in_order(self) -> None:
        while True:
            item = self._work.get()
            if item is None or self._stop.is_set():
                return
            try:
                if not self.handle(item):
                    return
                if item.qos > 0:
                    self.client.ack(item.mid, item.qos)
            except Exception:  # one message's failure must not end the worker: the intake would stall
                log.exception(
                    "edge %s: a message on %s failed; left for the broker to deliver again",
                    self.edge,
                    item.topic,
                )
