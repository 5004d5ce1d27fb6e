"""Sensor readings through a store's gateway: intake readings/s over MQTT, and reading → alarm latency.

    .venv/bin/python bench/sensor_intake.py [--messages 400] [--batch 50] [--alarms 30]

Needs the local stack (``edgecore stack up``: Kafka, MinIO) and Debian's mosquitto.  A
store site of its own (broker, MinIO), the gateway's MQTT intake scoring readings with a
sensor model trained here on generated telemetry, and one device logged in with its token:

* intake: ``--messages`` messages of ``--batch`` readings (10 machines in turn), QoS 1,
  published as fast as the broker acknowledges them, timed until every window is scored;
  the baseline, in the same run, hands the same messages to the monitor in-process (no
  MQTT).  This process's RSS after a warm-up and at the end shows whether memory stays flat;
* latency: ``--alarms`` machines each run normally, then with a bearing wearing out (the
  generator's ``degradation`` fault), one reading per message; from
  publishing the reading whose window raises the alarm to the ``anomaly-detected`` event
  read back from Kafka.

Targets (issue 19): ≥ 5,000 readings/s per edge, memory flat; reading → alarm ≤ 1 s p99.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console

from foundation.events import AnomalyDetected, parse
from foundation.messaging import connection
from foundation.settings import Settings
from testkit.conditions import wait_for
from testkit.sensors import SensorFloor, export_sensor_model_for, sensor_floor, telemetry_readings

MACHINE, SEED, DEVICE = "press-1", 5, "plc-bench"
MACHINES, WINDOW, STRIDE = 10, 30, 10
"""Machines the readings are spread over; the sensor model's window and stride (as testkit exports it)."""
console = Console()


def scored(floor: SensorFloor) -> float:
    """Windows the gateway's monitor scored, every machine (its own registry, which the gateway serves)."""
    return sum(
        s.value
        for metric in floor.monitor.metrics.registry.collect()
        if metric.name == "edgecore_sensor_windows"
        for s in metric.samples
        if s.name.endswith("_total")
    )


def intake(floor: SensorFloor, messages: int, batch: int) -> tuple[float, float, float, float]:
    """Readings/s over MQTT and in-process, and RSS (MB) after the warm-up and at the end."""
    per_machine = -(-messages // MACHINES)
    rows = telemetry_readings(MACHINE, SEED, 0, batch * per_machine)
    # message i is machine i % MACHINES's next chunk: every machine's readings move forward in time
    # (a reading not newer than its machine's last is taken for one delivered again, and skipped)
    payloads = [rows[(i // MACHINES) * batch : (i // MACHINES + 1) * batch] for i in range(messages)]
    started = time.perf_counter()
    for i, readings in enumerate(payloads):  # the baseline: the monitor alone, its own machines
        floor.monitor.take(DEVICE, f"base-{i % MACHINES}", json.dumps({"readings": readings}).encode())
    in_process = messages * batch / (time.perf_counter() - started)
    floor.publish("warm-0", payloads[0])
    wait_for(lambda: scored(floor) > 0, 30, what="the warm-up scored")
    rss_warm = psutil.Process().memory_info().rss / 1e6
    before = scored(floor)
    sent = [sum(len(p) for p in payloads[k::MACHINES]) for k in range(MACHINES)]
    expected = sum(max(0, (n - WINDOW) // STRIDE + 1) for n in sent)
    started = time.perf_counter()
    for i, readings in enumerate(payloads):
        info = floor.device.publish(
            floor.topic(f"m-{i % MACHINES}"), json.dumps({"readings": readings}).encode(), qos=1
        )
    info.wait_for_publish(timeout=60)
    wait_for(lambda: scored(floor) - before >= expected, 120, every_s=0.01, what="every window scored")
    over_mqtt = messages * batch / (time.perf_counter() - started)
    return over_mqtt, in_process, rss_warm, psutil.Process().memory_info().rss / 1e6


def latency(floor: SensorFloor, alarms: int) -> list[float]:
    """Seconds from the publish of each alarm's raising reading to its event on Kafka."""
    topic = floor.settings.kafka.anomaly_topic(floor.site.edge)
    consumer = KafkaConsumer(**connection(floor.settings.kafka), enable_auto_commit=False)
    ids = wait_for(lambda: consumer.partitions_for_topic(topic), 30, what=f"the partitions of {topic}")
    partitions = [TopicPartition(topic, p) for p in ids]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for p in partitions:
        consumer.position(p)
    arrived: dict[str, tuple[float, AnomalyDetected]] = {}
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for batch in consumer.poll(timeout_ms=50).values():
                for record in batch:
                    event = parse(record.value).data
                    if isinstance(event, AnomalyDetected):
                        arrived[event.machine] = (time.perf_counter(), event)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent: dict[tuple[str, float], float] = {}
    normal, hot = (
        telemetry_readings(MACHINE, SEED, 0, 60),
        telemetry_readings(MACHINE, SEED, 60, 60, "degradation"),
    )
    for k in range(alarms):
        machine = f"worn-{k}"
        floor.publish(machine, normal)
        for reading in hot:
            sent[(machine, float(reading["t"]))] = time.perf_counter()  # type: ignore[arg-type]
            floor.publish(machine, [reading])
            if machine in arrived:
                break
        wait_for(lambda m=machine: m in arrived, 30, every_s=0.005, what=f"the alarm of {machine}")
    done.set()
    reader.join()
    consumer.close()
    return [at - sent[(m, e.window_end.timestamp())] for m, (at, e) in arrived.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--alarms", type=int, default=30)
    args = parser.parse_args()
    core = Settings()
    core = core.updated(
        state_dir=Path(tempfile.mkdtemp(prefix="sensor-bench-")),
        kafka={"topic_anomaly_detected": f"bench-anomaly-{uuid.uuid4().hex[:8]}"},
    )
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("training a sensor model"):
            model = export_sensor_model_for(MACHINE, Path(tmp) / "v000001", SEED)
        with sensor_floor(core, model.folder, "bench-floor", DEVICE) as floor:
            with console.status("intake"):
                over_mqtt, in_process, rss_warm, rss_end = intake(floor, args.messages, args.batch)
            with console.status("reading → alarm"):
                waits = np.array(latency(floor, args.alarms)) * 1000
    print(f"intake over MQTT : {over_mqtt:9.0f} readings/s ({args.messages} messages of {args.batch})")
    print(f"in-process       : {in_process:9.0f} readings/s (baseline); ratio {over_mqtt / in_process:.2f}")
    print(f"RSS after warm-up {rss_warm:.0f} MB, at the end {rss_end:.0f} MB")
    print(
        f"reading → alarm over {len(waits)} alarms: p50 {np.percentile(waits, 50):.1f} ms, "
        f"p99 {np.percentile(waits, 99):.1f} ms, max {waits.max():.1f} ms"
    )


if __name__ == "__main__":
    main()
