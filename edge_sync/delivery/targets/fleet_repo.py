"""The fleet git repository Argo CD renders onto every edge cluster, driven through the ``git`` CLI.

In GitOps mode git is the only writer of what an edge serves, so every change is one
commit of one file, pushed to the branch Argo CD follows.  A push that loses a race
(another controller or an operator pushed meanwhile) is not rebased blindly: the
remote is fetched again and the change recomputed from what is there now, so a
rollback decided on stale content is never replayed over a newer decision.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import InvalidInput, ResourceVersionConflict, ServiceUnavailable

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
"""Fetch, recompute and push again this many times in all before a lost race is reported."""
GIT_TIMEOUT_S = 60.0
NOT_FAST_FORWARD = ("non-fast-forward", "fetch first", "rejected", "stale info")


@dataclass(frozen=True)
class Author:
    """Who the controller's commits name (``git log`` shows it next to every rollout)."""

    name: str = "edgecore sync controller"
    email: str = "edge-sync@edgecore.invalid"


class FleetRepo:
    """A private clone of the fleet repository's ``branch`` under the controller's work folder."""

    def __init__(self, url: str, branch: str, workdir: Path, author: Author | None = None) -> None:
        self.url = url
        self.branch = branch
        self.workdir = workdir
        self.author = author or Author()
        self._remote = f"origin/{branch}"

    # -- git ---------------------------------------------------------------------------
    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": self.author.name,
            "GIT_AUTHOR_EMAIL": self.author.email,
            "GIT_COMMITTER_NAME": self.author.name,
            "GIT_COMMITTER_EMAIL": self.author.email,
            "GIT_TERMINAL_PROMPT": "0",  # a missing credential fails, never waits on a prompt
        }
        try:
            done = subprocess.run(
                ["git", "-C", str(self.workdir), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceUnavailable(f"git {args[0]} in {self.workdir}: {exc}") from exc
        if check and done.returncode != 0:
            raise ServiceUnavailable(
                f"git {args[0]} ({self.where()}): {scrub_credentials(done.stderr.strip()[-400:])}"
            )
        return done

    def where(self) -> str:
        """The remote without any credential a URL may carry (user:token@host)."""
        head, sep, tail = self.url.rpartition("@")
        return f"{head.split('//')[0]}//…@{tail}" if sep and "//" in head else self.url

    def fetch(self) -> None:
        """Clone on first use, then bring ``origin/<branch>`` up to the remote's HEAD."""
        if not (self.workdir / ".git").is_dir():
            if self.workdir.exists():
                shutil.rmtree(self.workdir)  # a clone a killed controller left half made
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                ["git", "clone", "--quiet", "--no-checkout", self.url, str(self.workdir)],
                capture_output=True,
                text=True,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                raise ServiceUnavailable(
                    f"git clone {self.where()}: {scrub_credentials(done.stderr.strip()[-400:])}"
                )
        refspec = f"+refs/heads/{self.branch}:refs/remotes/{self._remote}"
        self.git("fetch", "--quiet", "--prune", "origin", refspec)

    def head(self) -> str:
        return self.git("rev-parse", self._remote).stdout.strip()

    def read(self, path: str, fetch: bool = True) -> str | None:
        """The file at the remote's HEAD (None where it does not exist)."""
        if fetch:
            self.fetch()
        done = self.git("show", f"{self._remote}:{path}", check=False)
        if done.returncode == 0:
            return done.stdout
        if "does not exist" in done.stderr or "exists on disk, but not in" in done.stderr:
            return None
        said = scrub_credentials(done.stderr.strip()[-400:])
        raise InvalidInput(f"reading {path} at {self.branch} of {self.where()}: {said}")

    # -- changing it -------------------------------------------------------------------
    def change(self, path: str, edit: Callable[[str | None], tuple[str, str] | None]) -> bool:
        """Commit what ``edit`` makes of ``path`` (its new text and the commit message) and push it.

        ``edit`` is asked again, on the remote's newest content, after every push that lost
        a race; None from it means there is nothing (left) to change.  True once pushed.
        """
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            self.fetch()
            wanted = edit(self.read(path, fetch=False))
            if wanted is None:
                return False
            text, message = wanted
            self.git("checkout", "--quiet", "--force", "-B", self.branch, self._remote)
            target = self.workdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", "--", path)
            self.git("commit", "--quiet", "-m", message, "--", path)
            pushed = self.git("push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
            if pushed.returncode == 0:
                log.info("%s: pushed %s", self.where(), message.splitlines()[0])
                return True
            output = pushed.stdout + pushed.stderr
            if not any(mark in output for mark in NOT_FAST_FORWARD):
                raise ServiceUnavailable(
                    f"git push to {self.where()}: {scrub_credentials(output.strip()[-400:])}"
                )
            log.info("%s: push lost a race (attempt %d), recomputing on the new HEAD", self.where(), attempt)
        raise ResourceVersionConflict(
            f"{self.where()} {self.branch}: {PUSH_ATTEMPTS} pushes of {path} lost to concurrent commits"
        )


def scrub_credentials(text: str) -> str:
    """git's own messages quote URLs: any ``user:token@`` in them is cut before they reach a log."""
    return re.sub(r"//[^/\s@]+@", "//…@", text)


def init_fleet_repo(repo: FleetRepo, base: Path, files: dict[str, str] | None = None) -> None:
    """Make an empty fleet repository's first commit: ``base/edge/`` copied from ``base`` (the
    edge overlay, ``manifests/edge``) and any ``files`` given (path -> text)."""
    repo.workdir.parent.mkdir(parents=True, exist_ok=True)
    if not (repo.workdir / ".git").is_dir():
        clone = ["git", "clone", "--quiet", repo.url, str(repo.workdir)]
        subprocess.run(clone, capture_output=True, check=True, text=True, timeout=GIT_TIMEOUT_S)
    repo.git("checkout", "--quiet", "-B", repo.branch)
    shutil.copytree(base, repo.workdir / "base" / "edge", dirs_exist_ok=True)
    for path, text in (files or {}).items():
        (repo.workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (repo.workdir / path).write_text(text)
    repo.git("add", "--all")
    repo.git("commit", "--quiet", "-m", f"fleet: the edge base from {base.name}")
    repo.git("push", "--quiet", "origin", f"HEAD:refs/heads/{repo.branch}")
