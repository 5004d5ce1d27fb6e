"""An optional webhook for raised alarms: the CloudEvent that goes to Kafka, POSTed to a URL.

Whoever watches a factory floor may have no Kafka consumer, while a chat or paging
service takes a webhook.  Posting runs on a thread of its own behind a bounded queue, so a
slow or dead receiver never delays scoring; an alarm that cannot be queued, or is not
taken after a few tries, is logged and counted, never raised.  The URL is https (a
loopback address aside: a relay on the same host), and the bearer token, when there is
one, is never logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import httpx

from foundation.addresses import require_https_or_loopback

log = logging.getLogger(__name__)
QUEUE_SIZE = 100
ATTEMPTS = 3
TIMEOUT_S = 5.0
CONTENT_TYPE = "application/cloudevents+json"


class AlarmWebhook:
    """Posts each alarm's CloudEvent to one URL, in order, from one thread."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        client: httpx.Client | None = None,
        attempts: int = ATTEMPTS,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = require_https_or_loopback(url, "the alarm webhook URL")
        self._headers = {"Content-Type": CONTENT_TYPE}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
        self.attempts, self.backoff_s = attempts, backoff_s
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_SIZE)
        self.delivered = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="alarm-webhook", daemon=True)
        self._thread.start()

    def send(self, event: bytes) -> bool:
        """Queue one alarm's event; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            log.warning("alarm webhook: %d alarm(s) waiting already, one dropped", QUEUE_SIZE)
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (within ``timeout_s``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._client.close()

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            if self._post(event):
                self.delivered += 1
            else:
                self.failed += 1

    def _post(self, event: bytes) -> bool:
        why = ""
        for attempt in range(1, self.attempts + 1):
            try:
                answer = self._client.post(self.url, content=event, headers=self._headers)
            except httpx.HTTPError as exc:
                why = type(exc).__name__
            else:
                if answer.is_success:
                    return True
                why = f"HTTP {answer.status_code}"
                if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
                    break  # the receiver refuses this event: sending it again changes nothing
            if attempt < self.attempts:
                time.sleep(self.backoff_s * attempt)
        log.warning("alarm webhook: an alarm was not delivered (%s)", why)
        return False
