"""What a training run is asked to train on: the contract of the listener, its ledger and launchers.

A run trains on dataset versions (one or more: a coalesced burst), each an edge's shipped
set; the run key makes launching idempotent, so a relaunch after a crash finds the same run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from foundation.layout import dataset_use_case, parse_version


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    version: str
    bucket: str
    prefix: str
    edge: str

    @property
    def use_case(self) -> str:
        """Which pipeline trains on it (``pipelines.submit.pipeline_for``): products or sensors."""
        return dataset_use_case(self.dataset)[0]


@dataclass(frozen=True)
class RunRequest:
    """What one pipeline run trains on: one or more dataset versions (a coalesced burst)."""

    run_key: str
    datasets: tuple[DatasetVersion, ...]
    launched: tuple[tuple[str, str], ...] = ()
    """(dataset, newest version an earlier run trained on): a run never trains on less."""

    def parameters(self, extra_datasets: tuple[str, ...] = ()) -> dict[str, Any]:
        """Arguments of ``training_pipeline``: the edges to retrain and what they learn from.

        Each shipped set is one version of its edge's dataset (one product's photos), so
        a model learns from the dataset's whole history up to the newest version here
        (``name@..vN``): bounded, hence reproducible.  A version that arrives after a newer
        one was launched is trained on inside that newer history, never as an older one.
        ``extra_datasets`` (e.g. the catalogue's photo datasets) are trained on as well.  The
        run key names the release its models roll out as (``edge_sync.delivery.waves``).
        """
        newest: dict[str, str] = {}
        for name, version in [*self.launched, *((d.dataset, d.version) for d in self.datasets)]:
            if name not in newest or parse_version(version) > parse_version(newest[name]):
                newest[name] = version
        newest = {name: v for name, v in newest.items() if name in {d.dataset for d in self.datasets}}
        extra = extra_datasets if self.use_case == "products" else ()  # photo datasets train products only
        return {
            "edges": sorted({d.edge for d in self.datasets}),
            "datasets": [*extra, *(f"{name}@..{v}" for name, v in sorted(newest.items()))],
            "release": self.run_key,
        }

    @property
    def use_case(self) -> str:
        """The use case of its datasets: the listener never mixes two in one run."""
        cases = {d.use_case for d in self.datasets}
        if len(cases) != 1:
            raise ValueError(f"run {self.run_key} mixes use cases {sorted(cases)}")
        return cases.pop()

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_key": self.run_key,
                "datasets": [asdict(d) for d in self.datasets],
                "launched": [list(pair) for pair in self.launched],
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> RunRequest:
        body = json.loads(raw)
        launched = tuple((str(name), str(version)) for name, version in body.get("launched", []))
        return cls(body["run_key"], tuple(DatasetVersion(**d) for d in body["datasets"]), launched)


class Launcher(Protocol):
    """Starts a training run; must be idempotent per ``request.run_key``."""

    def launch(self, request: RunRequest) -> str:
        """Start (or find the already started) run for this key; return its run id."""
        ...
