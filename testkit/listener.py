"""The core's training listener in a thread, with a dry-run launcher: what tests of the data path
wait on (a run launched, every record committed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from foundation.settings import Settings
from pipelines.launchers import DryRunLauncher
from pipelines.ledger import Ledger
from pipelines.listener import Listener, build_ledger
from testkit.kafka import committed, end_offset


@dataclass
class Running:
    listener: Listener
    launcher: DryRunLauncher
    ledger: Ledger
    group: str

    def metric(self, name: str) -> float:
        return self.listener.registry.get_sample_value(f"edgecore_listener_{name}_total") or 0.0

    def caught_up(self) -> bool:
        """Every record on the listener's topics so far is handled and committed: nothing more will happen."""
        kafka = self.listener.kafka
        topics = (kafka.topic_training_data_ready, kafka.topic_s3_events)
        return all(committed(kafka, self.group, t) == end_offset(kafka, t) for t in topics)


@contextmanager
def listening(cfg: Settings, unique: str, tmp_path: Path) -> Iterator[Running]:
    launcher = DryRunLauncher(tmp_path / "requests")
    group = f"test-listener-{unique}"
    ledger = build_ledger(cfg, group)
    listener = Listener(cfg.kafka, cfg.listener.coalesce_s, cfg.buckets.training, launcher, ledger)
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop, group, 0.5))
    thread.start()
    try:
        yield Running(listener, launcher, ledger, group)
    finally:
        stop.set()
        thread.join(timeout=60)
        ledger.close()
