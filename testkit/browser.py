"""A real browser for the page tests: Debian's Chromium, driven through its ChromeDriver.

The W3C WebDriver protocol is a handful of JSON calls over HTTP, so the tests speak it
with httpx rather than pull in a driver library.  Chromium runs headless with a fresh
profile and with every background connection off (this machine has no outside network,
and a page's tests must not depend on one).  ``make browser`` installs both packages.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from edgecore.stack.tools import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
T = TypeVar("T")


class BrowserError(RuntimeError):
    pass


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing: run `make browser` (Debian's chromium and chromium-driver)"
    return None


class Browser:
    """One WebDriver session: open pages, find elements, type, click, take screenshots."""

    def __init__(self, driver: httpx.Client, session: str) -> None:
        self._http = driver
        self._base = f"/session/{session}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, self._base + path, json=body)
        value = response.json().get("value")
        if response.status_code >= 400:
            raise BrowserError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:300]}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self._call("POST", "/elements", {"using": "css selector", "value": css})]

    def find(self, css: str, timeout: float = 15.0) -> str:
        """The first element ``css`` selects, waiting for it to appear."""
        return self.wait(lambda: next(iter(self.find_all(css)), None), f"an element {css!r}", timeout)

    def click(self, css: str, timeout: float = 15.0) -> None:
        """Click the first element ``css`` selects; found again when the page replaced it in between
        (a list re-drawn after a call: WebDriver's "stale element reference")."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("POST", f"/element/{self.find(css, timeout)}/click", {})
                return
            except BrowserError as exc:
                if "stale element" not in str(exc) or time.monotonic() > deadline:
                    raise

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self._call("POST", f"/element/{element}/clear", {})
        self._call("POST", f"/element/{element}/value", {"text": text})

    def select(self, css: str, value: str) -> None:
        """Choose the option of a ``<select>`` with ``value``, as a person would."""
        self.click(f'{css} option[value="{value}"]')

    def text(self, css: str) -> str:
        return str(self._call("GET", f"/element/{self.find(css)}/text"))

    def attribute(self, element: str, name: str) -> str | None:
        """An attribute of an element that :meth:`find_all` returned."""
        value = self._call("GET", f"/element/{element}/attribute/{name}")
        return None if value is None else str(value)

    def run(self, script: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def resize(self, width: int, height: int) -> None:
        self._call("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def wait(self, probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
        """Poll ``probe`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise BrowserError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.1)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the length of the block."""
    why = missing()
    if why:
        raise BrowserError(why)
    port = free_port()
    profile = Path(tempfile.mkdtemp(prefix="edgecore-chromium-"))
    driver = subprocess.Popen(
        [str(CHROMEDRIVER), f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        _wait_ready(http, driver)
        options = {"binary": str(CHROMIUM), "args": [*FLAGS, f"--user-data-dir={profile}"]}
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        session = http.post("/session", json={"capabilities": capabilities}).json()["value"]
        if "sessionId" not in session:
            raise BrowserError(f"chromium did not start: {session.get('message', session)}")
        try:
            yield Browser(http, session["sessionId"])
        finally:
            http.delete(f"/session/{session['sessionId']}")
    finally:
        http.close()
        driver.terminate()
        driver.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def _wait_ready(http: httpx.Client, driver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise BrowserError(f"chromedriver exited with {driver.returncode}")
        try:
            if http.get("/status").json()["value"]["ready"]:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise BrowserError("chromedriver did not become ready in 20 s")
