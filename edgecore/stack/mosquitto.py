"""A store's MQTT broker for the gateway's MQTT intake: Debian's Eclipse Mosquitto.

A system ``mosquitto`` (``apt-get install mosquitto``) is used when present.  Otherwise
the Debian packages are fetched with ``apt-get download`` (no root needed) and unpacked
with ``dpkg-deb -x`` into the per-user cache, the way MinIO and Kafka are cached.  The
broker listens on the site's address only, keeps QoS 1 sessions on disk (a gateway that
was down gets what devices sent meanwhile), and refuses packets larger than an image may
be, so an oversized publish never reaches the gateway.

Nobody is anonymous (:class:`BrokerAccess`): the gateway and each device log in with
their own name and password (hashed by ``mosquitto_passwd``), the login name is the
client id (a second client cannot take the gateway's session), and ACLs let a device
publish under ``edge/<edge>/images/<its name>/`` and read ``edge/<edge>/results/<its
name>/`` only.  Changed device credentials are applied with a reload (SIGHUP).

The intake is optional (the issue says "when present"): where neither a system
mosquitto nor apt-get exists, ``edgecore stack up`` says so and carries on without it.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge_sync.uplink.mqtt import gateway_user
from edge_sync.uplink.sensor_intake import sensors_user
from edgecore.stack.process import ManagedProcess, wait_until
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, port_open, unpack_debian
from foundation.credentials import read_tokens_file
from foundation.settings import Settings

SYSTEM_BINARY = Path("/usr/sbin/mosquitto")
PACKAGES = ("mosquitto", "libmosquitto1", "libcjson1", "libdlt2", "libwrap0")
"""The broker and the libraries a minimal Debian 12 lacks; unpacked side by side."""

PACKET_HEADROOM = 64 * 1024
"""Topic, properties and framing on top of the largest image a device may publish."""
QUEUED_MESSAGES = 200_000
"""Messages the broker keeps per client while it is away: about a day of ten devices sending every 5 s."""
QUEUED_BYTES = 1024 * 1_048_576
"""The same bound in bytes (1 GiB), which the images reach first: beyond it the broker drops."""


@dataclass(frozen=True)
class BrokerAccess:
    """Who may log in to a store's broker: its gateway, and the devices of its gateway's devices file."""

    edge: str
    gateway_password: str
    devices_file: Path

    def passwords(self) -> dict[str, str]:
        """login → password: the gateway's, and each device's newest token."""
        devices = {device: tokens[-1] for device, tokens in read_tokens_file(self.devices_file).items()}
        gateway = {
            gateway_user(self.edge): self.gateway_password,
            sensors_user(self.edge): self.gateway_password,
        }
        return {**devices, **gateway}  # the gateway's logins win

    def acl(self) -> str:
        edge = self.edge
        return "\n".join(
            [
                f"user {gateway_user(edge)}",
                f"topic read edge/{edge}/images/#",
                f"topic write edge/{edge}/results/#",
                "",
                f"user {sensors_user(edge)}",
                f"topic read edge/{edge}/sensors/#",
                f"topic write edge/{edge}/results/#",
                "",
                f"pattern write edge/{edge}/images/%u/#",
                f"pattern write edge/{edge}/sensors/%u/#",
                f"pattern read edge/{edge}/results/%u/#",
                "",
            ]
        )


class MosquittoInstall:
    """Debian's mosquitto on this machine: the system's, or unpacked into the user cache."""

    def __init__(self, stack: StackSettings) -> None:
        self.stack = stack
        self.root = stack.cache_dir / "mosquitto"

    def binary(self) -> Path | None:
        if SYSTEM_BINARY.exists():
            return SYSTEM_BINARY
        cached = self.root / "usr" / "sbin" / "mosquitto"
        return cached if cached.exists() else None

    def install(self) -> bool:
        """Unpack Debian's mosquitto into the cache unless one is there; True if unpacked."""
        if self.binary() is not None:
            return False
        unpack_debian(PACKAGES, self.root, self.stack.cache_dir, "mosquitto")
        return True

    def environment(self) -> dict[str, str]:
        """What the broker and its tools run with (the unpacked libraries beside them)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LD_LIBRARY_PATH": self.library_path()}

    def library_path(self) -> str:
        dirs = [
            str(d)
            for d in sorted(self.root.glob("usr/lib/*-linux-gnu")) + sorted(self.root.glob("lib/*-linux-gnu"))
        ]
        return os.pathsep.join(dirs)

    def tool(self, name: str) -> Path:
        for candidate in (Path("/usr/bin") / name, self.root / "usr" / "bin" / name):
            if candidate.exists():
                return candidate
        raise StackError(f"{name} is not installed (it comes with mosquitto): run `edgecore stack install`")

    def version(self) -> str:
        binary = self.binary()
        if binary is None:
            return "not installed"
        env = {**os.environ, "LD_LIBRARY_PATH": self.library_path()}
        try:
            result = subprocess.run([str(binary), "-h"], env=env, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        first = (result.stdout or result.stderr).splitlines()[:1]
        return first[0].removeprefix("mosquitto version ").strip() if first else "unknown"


class MosquittoService:
    name = "mosquitto"

    def __init__(self, settings: Settings, stack: StackSettings, access: BrokerAccess) -> None:
        self.settings = settings
        self.stack = stack
        self.access = access
        self.installed = MosquittoInstall(stack)
        self.base = settings.state_dir / "mosquitto"
        self.config = self.base / "mosquitto.conf"
        self.process = ManagedProcess("mosquitto", settings.state_dir / "run", marker=str(self.config))

    def binary(self) -> Path | None:
        return self.installed.binary()

    def version(self) -> str:
        return self.installed.version()

    @property
    def address(self) -> str:
        return f"{self.settings.uplink.mqtt_host}:{self.settings.uplink.mqtt_port}"

    def _write_config(self) -> None:
        s = self.settings
        (self.base / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    "# written by edgecore stack up; local broker of the gateway's MQTT intake",
                    f"listener {s.uplink.mqtt_port} {s.uplink.mqtt_host}",
                    # run as whoever started the stack (started as root, it would switch to
                    # `nobody`, which cannot write the persistence folder)
                    f"user {pwd.getpwuid(os.getuid()).pw_name}",
                    "allow_anonymous false",
                    f"password_file {self.base / 'passwords'}",
                    f"acl_file {self.base / 'acl'}",
                    "use_username_as_clientid true",
                    f"max_packet_size {s.uplink.max_image_bytes + PACKET_HEADROOM}",
                    # what the broker holds for a gateway that is down: mosquitto's default (1,000
                    # messages) would drop readings it had acknowledged to devices within hours
                    f"max_queued_messages {QUEUED_MESSAGES}",
                    f"max_queued_bytes {QUEUED_BYTES}",
                    "persistence true",
                    f"persistence_location {self.base / 'data'}/",
                    "autosave_interval 1",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def write_access(self) -> None:
        """The hashed password file and the ACL file, from the gateway's and the devices' credentials."""
        self.base.mkdir(parents=True, exist_ok=True)
        passwords = self.base / "passwords"
        passwords.touch(mode=0o600, exist_ok=True)
        passwords.write_text(
            "".join(f"{user}:{secret}\n" for user, secret in self.access.passwords().items())
        )
        tool = self.installed.tool("mosquitto_passwd")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LD_LIBRARY_PATH": self.installed.library_path(),
        }
        done = subprocess.run([str(tool), "-U", str(passwords)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            passwords.write_text("")  # never leave the passwords in clear
            raise StackError(f"mosquitto_passwd could not hash {passwords}: {done.stderr.strip()[:300]}")
        (self.base / "acl").write_text(self.access.acl())

    def reload_access(self) -> None:
        """Apply changed credentials without a restart (mosquitto reloads both files on SIGHUP)."""
        self.write_access()
        pid = self.process.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def healthy(self) -> bool:
        return port_open(self.settings.uplink.mqtt_host, self.settings.uplink.mqtt_port)

    def start(self, timeout_s: float = 30.0) -> bool:
        """Start the broker unless ours is already running; True if it was started."""
        if self.process.pid() is not None:
            wait_until(self.healthy, timeout_s, "mosquitto", self.process)
            return False
        binary = self.installed.binary()
        if binary is None:
            raise StackError("mosquitto is not installed: run `edgecore stack install`")
        if port_open(self.settings.uplink.mqtt_host, self.settings.uplink.mqtt_port):
            raise StackError(
                f"port {self.address} is taken by a process edgecore did not start; "
                "stop it or set EDGECORE_MQTT_PORT"
            )
        self._write_config()
        self.write_access()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LD_LIBRARY_PATH": self.installed.library_path(),
        }
        self.process.start([str(binary), "-c", str(self.config)], env)
        wait_until(self.healthy, timeout_s, "mosquitto", self.process)
        return True
