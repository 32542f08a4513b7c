#!/usr/bin/env python3
"""The audit viewer (serve/viewer/index.html) in Debian's headless Chromium, driven over W3C
WebDriver by chromedriver; python3's standard library only.

Writes a demo store (`annals demo --runs 200`, which prints the demo tenant's key), starts
`annals serve` on a free loopback port, then in the browser: a wrong key is "not accepted"; the
demo key lists the first page of support-bot's app-run runs, equal to what the API answers for
the same query; scrolling to the bottom loads the second page (rows equal the API's first two
pages); opening a run shows its node executions and its event history with the API's values; the
chain banner says ok with /v1/verify's head position. Saves a screenshot (path printed).

Exit 0 passed, 1 failed, 77 skipped: chromium or chromedriver is not installed. With CI=true and
ANNALS_BROWSER_REQUIRED=1 (.ci/run sets it once Chromium is installed) a missing browser fails.
chromedriver, chromium and the server are stopped on every exit.
"""

import argparse
import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

WAIT_SECONDS = 30  # a bound on waiting for the page, never a timing assertion
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,900"]
KEY_PATTERN = re.compile(r"\bak_[A-Za-z0-9_-]{43}\b")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def log(message):
    print("viewer_test: " + message, flush=True)


# ---- processes, all stopped on exit ----
class Processes:
    def __init__(self):
        self.procs = []
        self.dirs = []

    def start(self, argv, **kwargs):
        # A session of its own: killing the group also stops chromium under chromedriver.
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def temp_dir(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix)
        self.dirs.append(d)
        return d

    def stop(self, proc, sig=signal.SIGTERM, wait=10):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        else:
            # The leader is gone; children (chromium) may still be in its group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return proc.returncode

    def cleanup(self):
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs = []
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- HTTP: the API with the key, WebDriver without ----
def http_json(method, url, body=None, headers=None, timeout=WAIT_SECONDS):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json; charset=utf-8")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode("utf-8", "replace")


class Api:
    def __init__(self, base, key):
        self.base = base.rstrip("/")
        self.key = key

    def get(self, path, **query):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        status, body = http_json("GET", url, headers={"Authorization": "Bearer " + self.key})
        check(status == 200, f"GET {url}: expected 200, got {status}: {body}")
        return body


class WebDriver:
    def __init__(self, base):
        self.base = base
        self.session = None

    def call(self, method, path, body=None):
        status, answer = http_json(method, self.base + path, body)
        value = answer.get("value") if isinstance(answer, dict) else answer
        if status != 200:
            raise Failure(f"WebDriver {method} {path}: {status} {json.dumps(value)[:800]}")
        return value

    def new_session(self, chromium, user_data_dir):
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": chromium,
                                   "args": CHROMIUM_ARGS + ["--user-data-dir=" + user_data_dir]}}}}
        value = self.call("POST", "/session", caps)
        self.session = value["sessionId"]
        log(f"browser {value['capabilities'].get('browserVersion', '?')}")

    def s(self, path, method="GET", body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def quit(self):
        if self.session:
            try:
                self.s("", "DELETE")
            except Exception:  # the processes are killed afterwards anyway
                pass
            self.session = None

    def go(self, url):
        self.s("/url", "POST", {"url": url})

    def find(self, css):
        value = self.s("/element", "POST", {"using": "css selector", "value": css})
        return next(iter(value.values()))

    def click(self, css):
        self.s(f"/element/{self.find(css)}/click", "POST", {})

    def type(self, css, text, clear=True):
        element = self.find(css)
        if clear:
            self.s(f"/element/{element}/clear", "POST", {})
        self.s(f"/element/{element}/value", "POST", {"text": text})

    def js(self, script, *args):
        return self.s("/execute/sync", "POST", {"script": script, "args": list(args)})

    def wait(self, script, what, *args):
        """Polls a script until it returns a truthy value; WAIT_SECONDS bounds the wait."""
        deadline = time.monotonic() + WAIT_SECONDS
        last = None
        while time.monotonic() < deadline:
            last = self.js(script, *args)
            if last:
                return last
            time.sleep(0.1)
        state = self.js("return {runs: document.getElementById('runs-status').textContent,"
                        " chain: document.getElementById('chain').textContent,"
                        " message: document.getElementById('message').textContent}")
        raise Failure(f"waited {WAIT_SECONDS} s for {what}; page state: {state}")

    def console(self):
        """The browser console's entries so far (chromedriver's log endpoint)."""
        return self.s("/se/log", "POST", {"type": "browser"})

    def screenshot(self, path):
        png = base64.b64decode(self.s("/screenshot"))
        with open(path, "wb") as f:
            f.write(png)


# ---- the page's content, read through its stable ids and data attributes ----
ROWS_JS = """
return [...document.querySelectorAll('#runs-body tr')].map(tr => {
  const f = (name) => tr.querySelector('[data-field="' + name + '"]').textContent;
  return {id: tr.dataset.runId, workflow_id: f('workflow_id'), status: f('status'),
          created_by: f('created_by'), total_steps: f('total_steps'), total_tokens: f('total_tokens')};
});"""

NODES_JS = """
return [...document.querySelectorAll('#nodes-body tr')].map(tr => {
  const f = (name) => tr.querySelector('[data-field="' + name + '"]').textContent;
  return {index: tr.dataset.nodeIndex, node_id: tr.dataset.nodeId, node_type: f('node_type'),
          status: f('status'), total_tokens: f('total_tokens'), error: f('error')};
});"""

EVENTS_JS = """
return [...document.querySelectorAll('#events-body tr')].map(tr => {
  const f = (name) => tr.querySelector('[data-field="' + name + '"]').textContent;
  return {version: f('version'), position: f('position'), type: f('type'), actor: f('actor'),
          correlation_id: f('correlation_id'), causation_id: f('causation_id'), hash: f('hash'),
          recorded_at: f('recorded_at')};
});"""


def expected_row(run):
    return {"id": run["id"], "workflow_id": run["workflow_id"], "status": run["status"],
            "created_by": run["created_by"], "total_steps": str(run["total_steps"]),
            "total_tokens": str(run["total_tokens"])}


def text(v):
    return "" if v is None else str(v)


def compare_rows(shown, runs, what):
    expected = [expected_row(r) for r in runs]
    check(len(shown) >= len(expected),
          f"{what}: the page shows {len(shown)} rows, the API answered {len(expected)}")
    for i, (got, want) in enumerate(zip(shown, expected)):
        check(got == want, f"{what}: row {i} shows {got}, the API says {want}")


def run_browser(args, procs, base, key, api):
    wd_port = free_port()
    driver_log = os.path.join(args.out, "viewer_test_chromedriver.log")
    procs.start([args.chromedriver, f"--port={wd_port}", f"--log-path={driver_log}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wd = WebDriver(f"http://127.0.0.1:{wd_port}")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            status, body = http_json("GET", wd.base + "/status", timeout=2)
            if status == 200 and body.get("value", {}).get("ready"):
                break
        except (OSError, ValueError):
            pass
        check(time.monotonic() < deadline, f"chromedriver did not answer on port {wd_port} (log: {driver_log})")
        time.sleep(0.1)

    wd.new_session(args.chromium, procs.temp_dir("annals-viewer-profile-"))
    try:
        wd.go(base + "/")
        check(wd.js("return document.title") == "annals audit viewer", "the page at / is not the viewer")

        # A wrong key: the list and the banner say the key was not accepted.
        wd.type("#key", "ak_" + "x" * 43)
        wd.click("#key-use")
        status = wd.wait("const s = document.getElementById('runs-status');"
                         " return s.dataset.state === 'error' && s.textContent", "the wrong key's error")
        check("key not accepted" in status, f"a wrong key shows {status!r}, expected 'key not accepted'")
        wd.wait("return document.getElementById('chain').dataset.state === 'error'", "the chain banner's error")
        wd.click("#key-forget")
        check(wd.js("return sessionStorage.length") == 0, "forget key left something in sessionStorage")

        # The demo key, app support-bot, trigger app-run.
        wd.type("#key", key)
        wd.click("#key-use")
        # The app suggestions and trigger choices come from GET /v1/apps.
        apps = api.get("/v1/apps")["data"]
        wd.wait("return document.getElementById('app-ids').dataset.state === 'loaded'", "the app list")
        suggested = wd.js("return [...document.querySelectorAll('#app-ids option')].map(o => o.value)")
        check(suggested == [a["app_id"] for a in apps], f"app suggestions {suggested}, /v1/apps says {apps}")
        wd.type("#app", "support-bot")
        triggers = next(a["triggered_from"] for a in apps if a["app_id"] == "support-bot")
        offered = wd.js("return [...document.querySelectorAll('#trigger option')].map(o => [o.value, o.textContent])")
        for t in triggers:
            check([t, t] in offered, f"trigger {t!r} of support-bot (/v1/apps) is not offered as such: {offered}")
        wd.click("#trigger option[value='app-run']")
        wd.click("#filter-apply")
        check(key not in wd.js("return location.href"), "the key is in the page's URL")
        check(wd.js("return document.getElementById('key').value") == "", "the key stays in the input")
        limit = int(wd.js("return document.getElementById('page-size').value"))
        page1 = api.get("/v1/apps/support-bot/workflow-runs", triggered_from="app-run", limit=limit)
        check(len(page1["data"]) == limit and page1["has_more"],
              f"the demo should have more than {limit} app-run runs of support-bot; the API says {page1}")
        wd.wait("return document.querySelectorAll('#runs-body tr').length >= arguments[0]"
                " && document.getElementById('runs-status').dataset.state !== 'loading'",
                "the first page of runs", limit)
        compare_rows(wd.js(ROWS_JS), page1["data"], "first page")
        log(f"first page: {limit} rows equal the API's")

        # Scroll to the end of the list: the sentinel loads the next page.
        page2 = api.get("/v1/apps/support-bot/workflow-runs", triggered_from="app-run", limit=limit,
                        last_id=page1["data"][-1]["id"])
        check(len(page2["data"]) > 0, "the API has no second page")
        wd.js("document.getElementById('runs-sentinel').scrollIntoView()")
        wd.wait("return document.querySelectorAll('#runs-body tr').length > arguments[0]"
                " && document.getElementById('runs-status').dataset.state !== 'loading'",
                "the second page after scrolling", limit)
        shown = wd.js(ROWS_JS)
        compare_rows(shown, page1["data"] + page2["data"], "first two pages")
        check(len(set(r["id"] for r in shown)) == len(shown), "a run is listed twice")
        log(f"after scrolling: {len(shown)} rows, the first {limit + len(page2['data'])} equal the API's two pages")

        # Open a run of the second page: the first with node executions.
        run, nodes = None, []
        for candidate in page2["data"]:
            nodes = api.get(f"/v1/workflow-runs/{candidate['id']}/node-executions")["data"]
            if nodes:
                run = candidate
                break
        check(run is not None, "no run of the second page has node executions in the API")
        wd.click(f"button.run-open[data-run-id='{run['id']}']")
        wd.wait("const d = document.getElementById('detail');"
                " return d.dataset.state === 'loaded' && d.dataset.runId === arguments[0]",
                f"run {run['id']}'s detail", run["id"])
        fields = wd.js("return Object.fromEntries([...document.querySelectorAll('#run-fields dd')]"
                       ".map(dd => [dd.dataset.field, dd.textContent]))")
        want_fields = {name: text(run[name]) for name in
                       ("id", "app_id", "workflow_id", "triggered_from", "status", "created_by", "inputs")}
        want_fields["created_at"] = run["created_at"].replace("T", " ").removesuffix("Z")  # shown so, in UTC
        for name, want in want_fields.items():
            check(fields.get(name) == want, f"run field {name}: page {fields.get(name)!r}, API {want!r}")

        shown_nodes = wd.js(NODES_JS)
        want_nodes = [{"index": str(n["index"]), "node_id": n["node_id"], "node_type": n["node_type"],
                       "status": n["status"], "total_tokens": str(n["total_tokens"]),
                       "error": text(n["error"])} for n in nodes]
        check(shown_nodes == want_nodes, f"node executions: page {shown_nodes}, API {want_nodes}")
        log(f"run {run['id']}: {len(nodes)} node executions equal the API's")

        # The event history: every page of the API, and the page's "load more" until the end.
        events, after = [], 0
        while True:
            page = api.get(f"/v1/workflow-runs/{run['id']}/events", after_version=after, limit=100)
            events += page["data"]
            if not page["has_more"] or not page["data"]:
                break
            after = page["data"][-1]["version"]
        check(len(events) > 0, f"run {run['id']} has no events in the API")
        while wd.js("return document.getElementById('events-status').dataset.state") == "more":
            before = wd.js("return document.querySelectorAll('#events-body tr').length")
            wd.click("#events-more")
            wd.wait("return document.querySelectorAll('#events-body tr').length > arguments[0]"
                    " && document.getElementById('events-status').dataset.state !== 'loading'",
                    "the next page of events", before)
        shown_events = wd.js(EVENTS_JS)
        want_events = [{"version": str(e["version"]), "position": str(e["position"]), "type": e["type"],
                        "actor": e["metadata"]["actor"], "correlation_id": e["metadata"]["correlation_id"],
                        "causation_id": e["metadata"]["causation_id"], "hash": e["hash"][:12]}
                       for e in events]
        got_events = [{k: v for k, v in e.items() if k != "recorded_at"} for e in shown_events]
        check(got_events == want_events, f"events: page {got_events}, API {want_events}")
        check(events[0]["type"] == "RunCreated", f"the first event is {events[0]['type']}, expected RunCreated")
        check(any(e["metadata"]["correlation_id"] for e in events), "no event has a correlation id")
        check(all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$", e["recorded_at"]) for e in shown_events),
              f"an event's time is not shown as a date: {[e['recorded_at'] for e in shown_events][:3]}")
        log(f"run {run['id']}: {len(events)} events equal the API's (types {sorted(set(e['type'] for e in events))},"
            f" correlation id {events[0]['metadata']['correlation_id']!r})")

        # "Open run" by id (the way to a deleted run's history): a run of the first page.
        other = page1["data"][0]
        wd.type("#open-run-id", other["id"])
        wd.click("#open-run")
        wd.wait("const d = document.getElementById('detail');"
                " return d.dataset.state === 'loaded' && d.dataset.runId === arguments[0]"
                " && document.querySelectorAll('#events-body tr').length > 0",
                f"run {other['id']} opened by id", other["id"])
        opened = wd.js("return document.querySelector('#run-fields dd[data-field=\"status\"]').textContent")
        check(opened == other["status"], f"run {other['id']} opened by id shows status {opened!r}, API {other['status']!r}")

        # The chain banner.
        verify = api.get("/v1/verify")
        check(verify.get("ok") is True, f"/v1/verify says the demo chain is not ok: {verify}")
        banner = wd.wait("const c = document.getElementById('chain');"
                         " return c.dataset.state === 'ok' && c.dataset.headPosition + '|' + c.textContent",
                         "the chain banner")
        position, _, banner_text = banner.partition("|")
        check(position == str(verify["head_position"]) and f"position {verify['head_position']}" in banner_text
              and verify["head_hash"][:12] in banner_text,
              f"chain banner {banner_text!r}, /v1/verify says {verify}")
        log(f"chain banner: {banner_text}")

        # No script error and no Content-Security-Policy violation on the way. The wrong key's
        # 401 responses are logged by the browser as failed loads: those are expected.
        problems = [e["message"] for e in wd.console()
                    if e.get("level") == "SEVERE" and "status of 401" not in e.get("message", "")]
        check(not problems, f"the browser console reports: {problems}")

        shot = os.path.join(args.out, "viewer_test.png")
        wd.screenshot(shot)
        log(f"screenshot: {shot}")
    finally:
        wd.quit()


def start_server(args, procs, work):
    db = os.path.join(work, "demo.db")
    keys = os.path.join(work, "demo.keys")
    demo = subprocess.run([args.annals, "demo", "--db", db, "--runs", "200", "--keys", keys],
                          capture_output=True, text=True, timeout=120)
    check(demo.returncode == 0, f"annals demo failed ({demo.returncode}): {demo.stdout}{demo.stderr}")
    found = KEY_PATTERN.findall(demo.stdout)
    check(len(found) >= 1, f"annals demo printed no key (ak_...):\n{demo.stdout}")
    key = found[0]

    server = procs.start([args.annals, "serve", "--db", db, "--keys", keys, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()

    def pump():
        for line in server.stdout:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    seen = []
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        check(remaining > 0, f"annals serve printed no 'listening on' line: {''.join(seen)}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise Failure(f"annals serve exited ({server.wait()}) before listening: {''.join(seen)}")
        seen.append(line)
        m = re.search(r"listening on (http://127\.0\.0\.1:(\d+))/", line)
        if m:
            return server, m.group(1), key


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annals", help="the annals program")
    parser.add_argument("--out", default=".", help="where the screenshot and the chromedriver log go")
    parser.add_argument("--url", help="use this running server instead (needs --key)")
    parser.add_argument("--key", help="the key for --url")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    args = parser.parse_args()
    if not args.url and not args.annals:
        parser.error("give --annals (or --url and --key)")

    missing = [p for p in (args.chromium, args.chromedriver) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        required = os.environ.get("CI") == "true" and os.environ.get("ANNALS_BROWSER_REQUIRED") == "1"
        message = (f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver;"
                   " bash scripts/install-deps.sh --browser installs them)")
        if required:
            log("FAILED: " + message + "; CI installed Chromium (ANNALS_BROWSER_REQUIRED=1), so it must run")
            return 1
        log("SKIPPED: " + message)
        return 77

    os.makedirs(args.out, exist_ok=True)
    procs = Processes()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = None
        if args.url:
            base, key = args.url.rstrip("/"), args.key
        else:
            server, base, key = start_server(args, procs, procs.temp_dir("annals-viewer-test-"))
        log(f"server {base}")
        run_browser(args, procs, base, key, Api(base, key))
        if server is not None:
            code = procs.stop(server)
            check(code == 0, f"annals serve exited {code} on SIGTERM, expected 0")
        log("passed")
        return 0
    except Failure as e:
        log("FAILED: " + str(e))
        return 1
    finally:
        procs.cleanup()


if __name__ == "__main__":
    sys.exit(main())
