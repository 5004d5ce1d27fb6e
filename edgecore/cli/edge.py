"""``edgecore edge gateway | ship | requeue | listen``: the edge-to-core data path."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry

from edge_sync.uplink import service
from edge_sync.uplink.outbox import Outbox, outbox_path
from edge_sync.uplink.sensor_intake import SensorReadings
from edgecore.cli.common import cli_errors, console, service_logging
from foundation.errors import InvalidInput
from foundation.settings import Settings
from pipelines import launchers, listener
from pipelines.runs import Launcher

app = typer.Typer(no_args_is_help=True)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command()
def gateway(
    edge: str = typer.Option(..., help="This store's edge id."),
    host: str | None = typer.Option(None, help="Address to listen on (default: EDGECORE_GATEWAY_HOST)."),
    ship: bool = typer.Option(True, help="Also run the shipper (sends completed sets to the core)."),
    mqtt: bool = typer.Option(
        False,
        help=(
            "Also take images devices publish on edge/<edge>/images/<device>/<sku> at the store's"
            " broker (EDGECORE_MQTT_HOST:EDGECORE_MQTT_PORT)."
        ),
    ),
    sensor_model: Path | None = typer.Option(
        None,
        help="With --mqtt: score the sensor readings devices publish on"
        " edge/<edge>/sensors/<device>/<machine> with this sensor model version folder; alarms go to Kafka.",
    ),
    sensors: bool = typer.Option(
        False,
        help="With --mqtt: score sensor readings with the newest version of <edge>-sensors delivered to the"
        " edge bucket, verified and swapped in as new versions arrive (instead of a fixed --sensor-model).",
    ),
) -> None:
    """The store's device/kiosk gateway on its port (EDGECORE_GATEWAY_PORT), its shipper and MQTT intake."""
    service_logging()
    with cli_errors():
        settings = Settings()
        if (sensor_model is not None or sensors) and not mqtt:
            raise InvalidInput("sensor models score readings that arrive over MQTT: add --mqtt")
        if sensor_model is not None and sensors:
            raise InvalidInput(
                "--sensors follows the delivered versions; --sensor-model fixes one: choose one"
            )
        # LiteRT is loaded only for a sensor model
        from serving.sensors import build_sensor_monitor, following_sensor_model

        with ExitStack() as running:
            readings: SensorReadings | None = None
            registry: CollectorRegistry | None = None
            batches = service.telemetry_batches(settings, edge) if sensors or sensor_model else None
            if sensors:
                slot = running.enter_context(following_sensor_model(settings, edge, batches))
                readings, registry = slot, slot.metrics.registry
            elif sensor_model is not None:
                monitor = build_sensor_monitor(settings, edge, sensor_model, batches)
                readings, registry = monitor, monitor.metrics.registry
            address = host or settings.uplink.gateway_host
            service.run_gateway(settings, edge, address, ship, mqtt, readings, registry, batches)


@app.command()
def ship(edge: str = typer.Option(..., help="This store's edge id.")) -> None:
    """Only the shipper: send the outbox's sets to the core's front door (EDGECORE_DOOR_URL) until stopped."""
    service_logging()
    with cli_errors():
        service.run_shipper(Settings(), edge, _stop_on_signals())


@app.command()
def requeue(
    edge: str = typer.Option(..., help="This store's edge id."),
    set_id: str | None = typer.Option(None, "--set", help="One rejected set (default: every one)."),
) -> None:
    """Send rejected sets again, once what the core refused them for is fixed."""
    with cli_errors():
        outbox = Outbox(outbox_path(Settings().outbox_dir, edge))
        ids = outbox.requeue(set_id)
        outbox.close()
    console.print(f"{len(ids)} set(s) will be shipped again: {', '.join(ids) or '-'}")


@app.command()
def listen(
    launcher: str = typer.Option("dry-run", help="dry-run (write run requests), local (kfp.local) or kfp."),
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run requests (dry-run) or pipeline roots (local); default <state>/listener/<launcher>.",
        ),
    ] = None,
    kfp_host: str = typer.Option("", help="KFP API endpoint (kfp launcher)."),
    experiment: str = typer.Option("edgecore", help="KFP experiment (kfp launcher)."),
    with_dataset: Annotated[
        list[str] | None, typer.Option(help="Also train on this dataset (name or name@version).")
    ] = None,
    group: str = typer.Option(listener.GROUP_ID, help="Kafka consumer group."),
    epochs: int | None = typer.Option(
        None, min=1, help="Training epochs of each run (default: the pipeline's)."
    ),
) -> None:
    """Turn new dataset versions into training runs (one per version) until stopped."""
    settings = Settings()
    folder = out_dir or settings.listener_dir / launcher
    extra = tuple(with_dataset or ())
    arguments = {} if epochs is None else {"epochs": epochs}
    chosen: Launcher
    if launcher == "dry-run":
        chosen = launchers.DryRunLauncher(folder, extra)
    elif launcher == "local":
        chosen = launchers.LocalLauncher(folder, extra, **arguments)
    elif launcher == "kfp" and kfp_host:
        package = folder / "training.yaml"
        chosen = launchers.KfpLauncher(kfp_host, settings.kfp, experiment, package, extra, **arguments)
    else:
        raise typer.BadParameter("use --launcher dry-run, local, or kfp with --kfp-host")
    console.print(f"listening as {group} with the {launcher} launcher ({folder})")
    service_logging()
    with cli_errors():
        listener.run_listener(settings, chosen, _stop_on_signals(), group)
