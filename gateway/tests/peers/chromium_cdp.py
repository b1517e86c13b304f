"""Drive headless Chromium through the DevTools protocol over a pipe
(--remote-debugging-pipe: fd 3 in, fd 4 out, NUL-separated JSON), so a test
can fill a form and click a button as a user would. Standard library only.

    chromium_cdp.py STEPS.json
STEPS: {"basic": "user:password" | null, "steps": [
    {"goto": URL}, {"fill": [CSS, VALUE]}, {"click": CSS}, {"dump": NAME}]}
"goto" and "click" wait for the next page load. Prints {NAME: DOM, ...} as
JSON on stdout; exits 1 naming the step that failed.
"""

import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import time

TIMEOUT = 20.0


class Cdp:
    def __init__(self, proc, to_chrome, from_chrome):
        self.proc, self.w, self.r = proc, to_chrome, from_chrome
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _read_one(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 65536)
                if not chunk:
                    raise EOFError("chromium closed the pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            m = self._read_one(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, name, session):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == name and m.get("sessionId") == session:
                    del self.events[: i + 1]
                    return m
            self.events.append(self._read_one(deadline))

    def evaluate(self, expr, session):
        r = self.call(
            "Runtime.evaluate",
            {"expression": expr, "returnByValue": True, "awaitPromise": True},
            session,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")


def main():
    spec = json.load(open(sys.argv[1]))
    profile = tempfile.mkdtemp(prefix="cdp-profile-")
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def fds():
        os.dup2(to_r, 3)
        os.dup2(from_w, 4)

    proc = subprocess.Popen(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ],
        preexec_fn=fds,
        pass_fds=(3, 4),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(to_r)
    os.close(from_w)
    cdp = Cdp(proc, to_w, from_r)
    out = {}
    step = "start"
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        cdp.call("Page.enable", {}, session)
        if spec.get("basic"):
            cdp.call("Network.enable", {}, session)
            auth = base64.b64encode(spec["basic"].encode()).decode()
            cdp.call(
                "Network.setExtraHTTPHeaders",
                {"headers": {"Authorization": f"Basic {auth}"}},
                session,
            )
        for s in spec["steps"]:
            step = json.dumps(s)
            if "goto" in s:
                cdp.call("Page.navigate", {"url": s["goto"]}, session)
                cdp.wait_event("Page.loadEventFired", session)
            elif "fill" in s:
                css, value = s["fill"]
                cdp.evaluate(
                    f"document.querySelector({json.dumps(css)}).value = {json.dumps(value)}",
                    session,
                )
            elif "click" in s:
                missing = cdp.evaluate(
                    f"(() => {{ const e = document.querySelector({json.dumps(s['click'])});"
                    " if (!e) return document.documentElement.outerHTML;"
                    " e.click(); return null; })()",
                    session,
                )
                if missing is not None:
                    raise LookupError(f"nothing to click on this page:\n{missing}")
                cdp.wait_event("Page.loadEventFired", session)
            elif "dump" in s:
                out[s["dump"]] = cdp.evaluate(
                    "document.documentElement.outerHTML", session
                )
        cdp.call("Browser.close")
    except Exception as e:  # noqa: BLE001 - report which step failed
        proc.kill()
        err = proc.stderr.read().decode(errors="replace")[-2000:]
        print(f"step {step} failed: {e!r}\nchromium: {err}", file=sys.stderr)
        sys.exit(1)
    proc.wait(timeout=TIMEOUT)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
