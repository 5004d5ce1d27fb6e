"""Two store sites: model-published → every edge answering with the new version, against the pull alone.

A core (its own buckets and topics on the stack's MinIO and Kafka, the real front door
``edgecore core door`` over TLS with the stack's certificate) and two store sites, each
with its own MinIO process, enrolled like a real store (a front-door token and a SCRAM
Kafka login).  Each site runs the real model server (``edgecore serve start``, a
subprocess serving from the site's own MinIO) and its sync controllers, in this process
on threads, built from the site's settings only: they pull through the door into the
site's MinIO, read the store's own topic over SASL_SSL, and long-poll the door, as at a
real site.  Each round puts version vN of both stores' models into the core registry
(files first, manifest last, as the publish step leaves it) and sends
``model-published`` as the publish step does (the core's topic and the store's own);
the clock runs from the manifests until both sites' servers answer a kiosk photo with vN.
"delivered by" says which of a site's pulls brought vN in first, the event's or the long
poll's ("event 204": the event's pull was told by the door that nothing newer exists).

Baseline, same round and version: the pull alone, both edges pulling vN through the door
at once with their own tokens into a scratch bucket of their own MinIO, the door's cache
of vN emptied first so the door fetches it from the registry as it did for the rollout.
It is taken after the rollout, not before: the sites' long polls see a version within a
second or two of its manifest, so a pull before the event would race the controllers'.
Goal: end-to-end ≤ 1 s plus the pull time (overhead ≤ 1 s).

With ``--modelcars`` the same rounds run twice in one command: first as above (the
baseline), then with each version also pushed as a modelcar to the stack's registry and
the sites in modelcar mode (``delivery.model_source = "oci"``: the controller checks the
image through the door, the server pulls ``oci://<door>/…@sha256:…`` itself); the last
line is the modelcar run's event→answer over the baseline's.

    .venv/bin/python bench/sync_sites.py                        # 3 rounds, 20 MB versions
    .venv/bin/python bench/sync_sites.py --rounds 1 --pad-mb 5  # a smoke run
    .venv/bin/python bench/sync_sites.py --modelcars            # s3 baseline, then modelcars
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from rich.table import Table
from sites_support import (
    REPO,
    STORES,
    TIMEOUT_S,
    Core,
    Row,
    Site,
    announce,
    answer_version,
    clean_up,
    core_settings,
    open_sites,
    put_files,
    serves,
    start_sites,
    version_dir,
)
from sync_support import console, drop_buckets, out

from edge_sync.delivery.service import build_pullers
from edgecore.demo.supervisor import Supervisor
from edgecore.stack.site import EdgeSite
from foundation.layout import Layout
from foundation.messaging import EventProducer


def answered_after(s: Site, version: str, started: float) -> float:
    """Seconds from ``started`` until the site's server answers a kiosk photo with ``version``.

    The frequent check is the server's versioned ready route, which runs no inference:
    an inference every few milliseconds would take CPU from the rollout it times.
    """
    with httpx.Client(timeout=30) as http:
        while time.perf_counter() - started < TIMEOUT_S:
            if serves(s, http, version) and answer_version(s, http) == version:
                return time.perf_counter() - started
            outcome = s.fleet.outcomes.get(s.edge) if s.fleet else None
            if outcome and outcome.version == version and outcome.action in ("rolled-back", "refused"):
                raise RuntimeError(f"{s.edge}: {version} {outcome.action}: {outcome.detail}")
            time.sleep(0.005)
    raise TimeoutError(f"{s.edge}: not answering with {version} after {TIMEOUT_S:.0f} s")


def delivered_by(core: Core, edge: str, version: str, started: float) -> str:
    """The path whose pull brought ``version`` in first, and what the event's pull got if not it."""
    mine = [p for p in core.pulls if p.edge == edge and p.ended >= started]
    first = min((p for p in mine if p.got == version), key=lambda p: p.ended, default=None)
    if first is None:
        return "?"
    if first.by == "event":
        return "event"
    missed = any(p.by == "event" and p.got is None and p.started < first.ended for p in mine)
    return "long poll, event 204" if missed else "long poll"


def pull_alone(core: Core, version: str) -> float:
    """Both edges pull ``version`` through the door at once, each into a scratch bucket of its MinIO."""
    for s in core.sites:  # the door fetches from the registry again, as it did for the rollout
        shutil.rmtree(core.settings.state_dir / "door" / "cache" / s.model / version, ignore_errors=True)
    scratch = {
        s.edge: s.site.settings.updated(
            state_dir=core.settings.state_dir / "baseline" / s.edge,
            buckets={"edge_prefix": f"scratch-{core.tag}-"},
        )
        for s in core.sites
    }
    pullers = {s.edge: build_pullers(scratch[s.edge], [s.spec()])[s.edge] for s in core.sites}
    go = threading.Barrier(len(core.sites) + 1)

    def pull(s: Site) -> None:
        go.wait()
        pulled = pullers[s.edge].pull(s.model)
        assert pulled == version, f"{s.edge}: the scratch pull got {pulled}, not {version}"

    try:
        with ThreadPoolExecutor(len(core.sites)) as pool:
            done = [pool.submit(pull, s) for s in core.sites]
            go.wait()
            started = time.perf_counter()
            for future in done:
                future.result()
            return time.perf_counter() - started
    finally:
        for s in core.sites:
            pullers[s.edge].door.close()
            drop_buckets(s.store, [Layout(scratch[s.edge].buckets).edge_bucket(s.edge)])


def one_round(core: Core, number: int, producer: EventProducer) -> Row:
    """Publish version ``number`` to both stores and time both answering; then the pull alone."""
    version = f"v{number:06d}"
    manifests = [put_files(core, version_dir(core, s.edge, number)) for s in core.sites]
    started = time.perf_counter()
    for manifest in manifests:
        announce(core, producer, manifest)
    with ThreadPoolExecutor(len(core.sites)) as pool:
        answers = list(pool.map(lambda s: answered_after(s, version, started), core.sites))
    row = Row(
        version,
        sum(e.size for e in manifests[0].files.values()) / 1_048_576,
        pull_alone(core, version),
        {s.edge: a for s, a in zip(core.sites, answers, strict=True)},
        {s.edge: delivered_by(core, s.edge, version, started) for s in core.sites},
    )
    console.print(
        f"[cyan]•[/cyan] {version}: both answering after {row.end_to_end:.3f} s; the pull alone "
        f"{row.pull_s:.3f} s; {'; '.join(f'{e[:4]}: {b}' for e, b in row.delivered_by.items())}"
    )
    return row


def latency(rounds: int, pad_mb: int, modelcars: bool = False) -> list[Row]:
    """Set up the core and both sites, roll out ``rounds`` versions, clean up whatever happens."""
    tag = uuid.uuid4().hex[:8]
    settings = core_settings(tag, modelcars)
    script = shutil.which("edgecore", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-c", "from edgecore.cli import app; app()"]
    paths = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    sup = Supervisor(settings.state_dir / "run", {**os.environ, "PYTHONPATH": paths}, command)
    sites = [Site(f"{name}-{tag}", EdgeSite(settings, f"{name}-{tag}")) for name in STORES]
    core = Core(tag, settings, sup, sites, pad_mb)
    console.print(f"[cyan]•[/cyan] run {tag} in {settings.state_dir}: training two tiny models (setup)")
    ok = False
    try:
        open_sites(core)
        console.print(f"[cyan]•[/cyan] door {settings.door.url}; the sites pull and serve v000001")
        start_sites(core)
        producer = EventProducer(settings.kafka, "/bench/publish")
        try:
            rows = [one_round(core, n, producer) for n in range(2, rounds + 2)]
        finally:
            producer.close()
        ok = True
    finally:
        clean_up(core)
        if ok:
            shutil.rmtree(settings.state_dir, ignore_errors=True)
        else:
            console.print(f"[red]failed: the services' logs are kept in {settings.state_dir / 'run'}[/red]")
    return rows


def report(rows: list[Row], how: str = "pulling through the front door") -> None:
    """Each round against its pull, and the goal on the worst round's overhead (and the median)."""
    edges = list(rows[0].answer_s)
    names = " / ".join(e.split("-")[0] for e in edges)
    columns = ["round", "version", "MB", "pull alone s", "event→answer s", f"{names} s", "overhead s"]
    table = Table(
        *columns,
        "÷ pull",
        f"delivered by ({names})",
        title=f"model-published → both sites (own MinIO, {how}) answer with it",
    )
    for i, r in enumerate(rows, 1):
        table.add_row(
            str(i),
            r.version,
            f"{r.mb:.1f}",
            f"{r.pull_s:.3f}",
            f"{r.end_to_end:.3f}",
            " / ".join(f"{r.answer_s[e]:.3f}" for e in edges),
            f"{r.end_to_end - r.pull_s:.3f}",
            f"{r.end_to_end / r.pull_s:.1f}×",
            " / ".join(r.delivered_by[e] for e in edges),
        )
    out.print(table)
    overheads = [r.end_to_end - r.pull_s for r in rows]
    ratios = ", ".join(f"{r.end_to_end / r.pull_s:.1f}×" for r in rows)
    out.print(
        f"goal: event→answer ≤ 1 s + pull; overhead worst {max(overheads):.3f} s, median "
        f"{statistics.median(overheads):.3f} s → {'met' if max(overheads) <= 1.0 else 'NOT met'}"
        f"; event→answer ÷ pull: {ratios}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Versions rolled out to both sites.")
    parser.add_argument("--pad-mb", type=int, default=20, help="Extra MB per version (a real model's pull).")
    parser.add_argument("--modelcars", action="store_true", help="Then again, serving through modelcars.")
    args = parser.parse_args()
    baseline = latency(args.rounds, args.pad_mb)
    report(baseline)
    if not args.modelcars:
        return
    modelcars = latency(args.rounds, args.pad_mb, modelcars=True)
    report(modelcars, "serving each version through its modelcar")
    before = statistics.median(r.end_to_end for r in baseline)
    after = statistics.median(r.end_to_end for r in modelcars)
    out.print(
        f"model-published → answering, median over rounds: s3 {before:.3f} s, modelcar {after:.3f} s; "
        f"modelcar ÷ s3 = {after / before:.2f}"
    )


if __name__ == "__main__":
    main()
