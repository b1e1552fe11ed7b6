"""Headless Chromium (the one `make ui-check` uses) driven over the DevTools protocol: open a page,
wait until it says it is ready, evaluate JavaScript in it, and list its console errors and every
URL it requested.  Started on loopback in a temporary profile, stopped on exit."""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from cluster_assets.cli.ui_check import CHROMIUM_FLAGS, chromium_binary


class Browser:
    def __init__(self, timeout: float = 60):
        self._profile = tempfile.TemporaryDirectory()
        self._proc = subprocess.Popen(
            [chromium_binary(), *CHROMIUM_FLAGS, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline, url = time.monotonic() + timeout, None
        assert self._proc.stderr is not None
        while url is None:
            line = self._proc.stderr.readline()
            if not line and (self._proc.poll() is not None or time.monotonic() > deadline):
                self.close()
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            url = found.group(1) if found else None
        # keep reading what Chromium logs, so that a full pipe never stops it
        threading.Thread(target=self._proc.stderr.read, daemon=True).start()
        self._ws = connect(url, max_size=None, open_timeout=timeout)
        self._ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        """One DevTools command's result; events that arrive meanwhile are kept in ``events``."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv(timeout=timeout))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, url: str, timeout: float = 60) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=session)
        page = Page(self, session)
        page.goto(url, timeout)
        return page

    def close(self) -> None:
        if hasattr(self, "_ws"):
            self._ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=20)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """A tab of the browser (a DevTools session)."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def goto(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait until the page sets ``data-ready`` on its body ("true", or "error")."""
        self.evaluate("document.body && document.body.removeAttribute('data-ready')")
        self.browser.send("Page.navigate", {"url": url}, self.session)
        deadline = time.monotonic() + timeout
        while self.evaluate("document.readyState === 'complete' && document.body.dataset.ready") in (None, False):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not become ready in {timeout} s")
            time.sleep(0.1)

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, self.session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _events(self, method: str) -> list[dict]:
        return [e["params"] for e in self.browser.events if e.get("sessionId") == self.session and e.get("method") == method]

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions so far."""
        out = [json.dumps(e["exceptionDetails"])[:500] for e in self._events("Runtime.exceptionThrown")]
        out += [json.dumps(e["args"])[:500] for e in self._events("Runtime.consoleAPICalled") if e["type"] in ("error", "assert")]
        out += [e["entry"]["text"] for e in self._events("Log.entryAdded") if e["entry"]["level"] == "error"]
        return out

    def requests(self) -> list[str]:
        """Every URL the page requested so far."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def screenshot(self, path: Path) -> None:
        data = self.browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session)["data"]
        path.write_bytes(base64.b64decode(data))
