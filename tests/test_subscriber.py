"""The gateway's MQTT worker: one message's failure does not end the work on the next ones."""

from __future__ import annotations

import queue

from edge_sync.uplink.subscriber import QueuedSubscriber, Received


class FailsOnce(QueuedSubscriber):
    def __init__(self) -> None:
        super().__init__("store-1", "127.0.0.1", 1, "gateway-store-1", "unused", "edge/store-1/#")
        self.handled: list[str] = []

    def handle(self, item: Received) -> bool:
        if item.topic.endswith("/bad"):
            raise RuntimeError("a bug")
        self.handled.append(item.topic)
        return True


def _message(topic: str) -> Received:
    return Received(
        mid=1, qos=0, topic=topic, payload=b"", content_type=None, response_topic=None, correlation=None
    )


def test_a_message_whose_handling_fails_does_not_stop_the_ones_after_it() -> None:
    subscriber = FailsOnce()
    work: queue.Queue[Received | None] = subscriber._work
    for topic in ("edge/store-1/a", "edge/store-1/bad", "edge/store-1/b"):
        work.put(_message(topic))
    work.put(None)  # then stop

    subscriber._in_order()

    assert subscriber.handled == ["edge/store-1/a", "edge/store-1/b"]
