"""A small WebDriver BiDi client (W3C WebDriver BiDi over the `websockets` package) for Firefox.

Playwright's Firefox needs its own patched browser build; Debian's firefox-esr speaks WebDriver
BiDi natively (``--remote-debugging-port``), so the tests drive it directly: launch, navigate,
evaluate JavaScript, pointer and key input, screenshots, and the console / JavaScript error log.
Firefox runs headless on a throw-away profile whose proxy settings keep it off every network but
loopback.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

# Anything not on loopback goes to a closed local port (no update checks, telemetry, remote settings).
PREFS = {
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": "127.0.0.1,localhost",
    "network.dns.disablePrefetch": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.shell.checkDefaultBrowser": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
}


def firefox_binary() -> str | None:
    """Debian's firefox-esr (or a firefox) on PATH, else None."""
    return shutil.which("firefox-esr") or shutil.which("firefox")


class BiDiError(RuntimeError):
    """A BiDi command answered with an error."""


class BiDi:
    """One WebDriver BiDi session over a websocket; events are collected in ``events``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws  # a websockets.sync.client.ClientConnection
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def command(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """Send *method* and wait for its result (events arriving meanwhile are kept)."""
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("type") == "event":
                self.events.append(message)
            elif message.get("id") == ident:
                if message.get("type") == "error":
                    raise BiDiError(f"{method}: {message.get('error')}: {message.get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result


class Tab:
    """A top-level browsing context of a BiDi session, with the helpers the tests use."""

    def __init__(self, bidi: BiDi, context: str) -> None:
        self.bidi = bidi
        self.context = context

    def navigate(self, url: str) -> None:
        self.bidi.command("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    def set_viewport(self, width: int, height: int) -> None:
        self.bidi.command(
            "browsingContext.setViewport", {"context": self.context, "viewport": {"width": width, "height": height}}
        )

    def call(self, function: str, *args: Any) -> Any:
        """Call the JavaScript *function* (awaited) with JSON *args*; its JSON-able result."""
        wrapped = f"async (...a) => JSON.stringify(await ({function})(...a.map((s) => JSON.parse(s))))"
        result = self.bidi.command(
            "script.callFunction",
            {
                "functionDeclaration": wrapped,
                "arguments": [{"type": "string", "value": json.dumps(a)} for a in args],
                "target": {"context": self.context},
                "awaitPromise": True,
            },
        )
        if result.get("type") == "exception":
            raise BiDiError(f"script exception: {result['exceptionDetails'].get('text')}")
        value = result["result"]
        return json.loads(value["value"]) if value.get("type") == "string" else None

    def wait_for(self, function: str, timeout: float = 30) -> Any:
        """Poll *function* until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.call(function)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {function}")
            time.sleep(0.1)

    def actions(self, *sources: dict[str, Any]) -> None:
        self.bidi.command("input.performActions", {"context": self.context, "actions": list(sources)})

    def drag(self, a: tuple[float, float], b: tuple[float, float], steps: int = 8) -> None:
        """Press the left button at viewport point *a*, move to *b* in *steps*, release."""

        def at(k: int) -> dict[str, Any]:
            t = k / steps
            return {"type": "pointerMove", "x": round(a[0] + (b[0] - a[0]) * t), "y": round(a[1] + (b[1] - a[1]) * t)}

        moves = [at(k) for k in range(1, steps + 1)]
        self.actions(
            {
                "type": "pointer",
                "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": round(a[0]), "y": round(a[1])},
                    {"type": "pointerDown", "button": 0},
                    *moves,
                    {"type": "pointerUp", "button": 0},
                ],
            }
        )

    def press(self, key: str) -> None:
        strokes = [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        self.actions({"type": "key", "id": "keyboard", "actions": strokes})

    def screenshot(self, path: Path) -> None:
        result = self.bidi.command("browsingContext.captureScreenshot", {"context": self.context})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))

    def errors(self) -> list[str]:
        """Console errors and uncaught JavaScript errors logged in this tab so far."""
        out = []
        for event in self.bidi.events:
            params = event.get("params", {})
            if event.get("method") == "log.entryAdded" and params.get("level") == "error":
                out.append(f"{params.get('type')}: {params.get('text')}")
        return out


@contextmanager
def firefox(binary: str, startup_timeout: float = 90) -> Iterator[BiDi]:
    """Headless Firefox with a fresh profile; yields a BiDi session subscribed to the log."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="firefox-profile-") as profile:
        Path(profile, "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
        )
        log_path = Path(profile, "firefox.log")
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, "--headless", "--no-remote", "--profile", profile, f"--remote-debugging-port={port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + startup_timeout
            while "WebDriver BiDi listening on" not in log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Firefox did not start:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.1)
            with connect(f"ws://127.0.0.1:{port}/session", max_size=None, open_timeout=30) as ws:
                bidi = BiDi(ws)
                bidi.command("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": False}}})
                bidi.command("session.subscribe", {"events": ["log.entryAdded"]})
                yield bidi
                bidi.command("session.end")
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def first_tab(bidi: BiDi) -> Tab:
    tree = bidi.command("browsingContext.getTree", {"maxDepth": 0})
    return Tab(bidi, tree["contexts"][0]["context"])
