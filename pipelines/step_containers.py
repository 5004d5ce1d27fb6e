"""Running each step of a local DAG inside its image, with podman, as a cluster would.

kfp.local's ``DockerRunner`` drives a Docker engine through docker-py with
``auto_remove=True``.  podman removes such a container the moment it exits, so docker-py's
``wait`` finds nothing and kfp 2.17 takes that for exit code 0: a failing step passes.
This launcher keeps the runner's contract (the step's image and command, the pipeline root
mounted at its own path, the component's environment) and runs ``podman run --rm``
itself, whose exit status is the step's.  It replaces kfp.local's Docker task handler only
while a run it started lasts.

What differs from a pod on purpose: the step runs as the calling user (``keep-id`` when
podman runs rootless), so its outputs belong to whoever runs the DAG; the ``EDGECORE_*``
and ``AWS_*`` settings of this process are passed by name (never in the command line), and
the files they name (a CA bundle, a credentials file; never a folder) are mounted
read-only.  ``images`` maps an image a component names to the build to run instead (the
one of this checkout), and nothing is ever pulled.  A kfp workspace is not mounted:
edgecore's pipelines use none.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import local
from kfp.local import docker_task_handler, status

PASSED_PREFIXES = ("EDGECORE_", "AWS_")


@dataclass(frozen=True)
class ContainerEngine:
    """The ``podman`` command line and the environment it runs under (its configuration)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    images: Mapping[str, str] = field(default_factory=dict)

    def run_step(
        self, image: str, command: Sequence[str], pipeline_root: str, step_env: Mapping[str, str]
    ) -> int:
        """Run one step's ``command`` in ``image``; its exit status, its output streamed."""
        passed = {name: value for name, value in os.environ.items() if name.startswith(PASSED_PREFIXES)}
        env = {**self.env, **passed, **step_env}
        argv = [*self.argv, "run", "--rm", "--pull=never", f"--user={os.getuid()}:{os.getgid()}"]
        if os.geteuid() != 0:
            argv.append("--userns=keep-id")
        argv += [f"--volume={pipeline_root}:{pipeline_root}:rw"]
        argv += [f"--volume={path}:{path}:ro" for path in _named_files(passed)]
        argv += [f"--env={name}" for name in sorted({**passed, **step_env})]
        argv += [self.images.get(image, image), *command]
        with subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="")
        return proc.returncode


def _named_files(settings: Mapping[str, str]) -> list[str]:
    """Files the settings name by absolute path (CA bundles, credential files): never a folder,
    so a state folder with its keys and tokens is not handed to a step."""
    return sorted({value for value in settings.values() if value.startswith("/") and Path(value).is_file()})


@contextmanager
def steps_in_images(engine: ContainerEngine) -> Iterator[Any]:
    """A ``DockerRunner`` whose tasks ``engine`` runs, for the length of the ``with``."""

    class PodmanTaskHandler:
        def __init__(
            self,
            image: str,
            full_command: list[str],
            pipeline_root: str,
            runner: Any,
            env_vars: dict[str, str] | None = None,
        ) -> None:
            self.image, self.command, self.root = image, full_command, pipeline_root
            self.env = env_vars or {}

        def run(self) -> status.Status:
            code = engine.run_step(self.image, self.command, self.root, self.env)
            return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

    original = docker_task_handler.DockerTaskHandler
    docker_task_handler.DockerTaskHandler = PodmanTaskHandler
    try:
        yield local.DockerRunner()
    finally:
        docker_task_handler.DockerTaskHandler = original
