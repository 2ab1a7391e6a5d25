"""The status page (issue 21): SetHandler swift-gateway-status, and mod_status's section.

Apache's parent makes each group's scoreboard and hands it to the supervisor; Apache's children
read it. While a load runs and a worker is stuck in a slow page, the JSON lists every group and
worker with its fields, the slow request's age grows and its path shows without the query, and
the requests served add up to what the load sent, across recycles (maximum-requests). The HTML
page escapes a hostile path; mod_status's page and its ?auto show the groups; without the
handler there is no page."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading

import requests

from sg_harness import HOST, BackgroundLoad, note, wait_until

STATUS = "/gateway-status"

GROUP_FIELDS = {"name", "program", "user", "socket", "scoreboard", "supervisor_pid", "processes", "queue",
                "in_flight", "requests_served", "recycles", "restarts", "workers"}
WORKER_FIELDS = {"entry", "slot", "pid", "state", "accepting", "uptime_seconds", "requests_served", "in_flight",
                 "queued", "routed_requests", "oldest_request", "rss_bytes", "cpu_seconds", "last_exit"}
RECYCLE_REASONS = {"maximum-requests", "restart-interval", "inactivity-timeout", "memory-limit", "cpu-time-limit",
                   "request-timeout", "rolling-restart", "scaled-down"}
RESTART_REASONS = {"exited", "crashed", "memory-kill", "startup-timeout", "blocked"}


def _site(s, *site_options: str) -> str:
    return "\n".join([
        s.daemon("site", "processes=2", "threads=4", *site_options),
        s.daemon("other", "processes=1", "threads=2"),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias /app {s.bin}",
        "<Location /app/other>",
        "    SwiftProcessGroup other",
        "</Location>",
        f"<Location {STATUS}>",
        "    SetHandler swift-gateway-status",
        "    Require local",
        "</Location>",
        "<Location /server-status>",
        "    SetHandler server-status",
        "    Require local",
        "</Location>",
    ])


def _status(srv, query: str = "json") -> dict:
    r = srv.get(f"{STATUS}?{query}")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), dict(r.headers)
    return r.json()


def _groups(page: dict) -> dict[str, dict]:
    return {g["name"]: g for g in page["groups"]}


def _served(page: dict) -> int:
    return sum(g["requests_served"] for g in page["groups"])


CONCURRENCY = 6


class _Counter:
    """Answers of a load so far (BackgroundLoad's observe, called from its client threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0

    def observe(self, _client: int, _sent: float, _response: requests.Response) -> None:
        with self.lock:
            self.value += 1


class _Drip:
    """A slow page (/drip) in a thread of its own: one worker's slot held while it runs."""

    def __init__(self, port: int, path: str, seconds: float):
        self.url = f"http://{HOST}:{port}{path}?seconds={seconds}&secret=yes"
        self.response: requests.Response | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.response = requests.get(self.url, timeout=120)

    def __enter__(self) -> "_Drip":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=120)


def _worker_running(page: dict, path: str) -> dict | None:
    for group in page["groups"]:
        for worker in group["workers"]:
            oldest = worker["oldest_request"]
            if oldest and oldest["path"] == path:
                return worker
    return None


def test_the_json_lists_every_group_and_worker_under_load_and_the_counts_add_up(apache):
    srv = apache(lambda s: _site(s, "maximum-requests=150"), ready_path="/app/hello",
                 extra_modules=("authz_host", "status"))
    srv.wait_workers("site", 2)
    srv.wait_workers("other", 1)
    wait_until(lambda: all(len(g["workers"]) == g["processes"]["configured"]
                           and all(w["accepting"] for w in g["workers"])
                           for g in _status(srv)["groups"]), 30, message="every worker on the board")
    before = _status(srv)
    served_before = _served(before)
    assert set(_groups(before)) == {"site", "other"}

    answered = _Counter()
    with BackgroundLoad(srv.port, "/app/hello", concurrency=CONCURRENCY, deadline=120,
                        observe=answered.observe) as load, \
            _Drip(srv.port, "/app/drip", 8) as drip:
        stuck = wait_until(lambda: _worker_running(_status(srv), "/app/drip"), 10,
                           message="the slow request on the board")
        first_age = stuck["oldest_request"]["age_seconds"]
        page = _status(srv)
        groups = _groups(page)
        for group in groups.values():
            assert GROUP_FIELDS <= set(group), set(group)
            assert group["scoreboard"] is True and group["supervisor_pid"] > 0, group
            assert set(group["recycles"]) == RECYCLE_REASONS and set(group["restarts"]) == RESTART_REASONS
            assert isinstance(group["queue"]["connections_waiting"], int), group["queue"]
            assert group["queue"]["requests_waiting"] >= 0
            assert group["user"] == "www-data" and group["program"] == srv.bin
            assert group["socket"].startswith(srv.socket_prefix), group["socket"]
            for worker in group["workers"]:
                assert WORKER_FIELDS <= set(worker), set(worker)
                assert worker["pid"] > 0 and worker["state"] in {"starting", "ready", "draining"}, worker
                assert worker["uptime_seconds"] >= 0 and worker["rss_bytes"] >= 0, worker
        assert groups["site"]["processes"] == {"running": groups["site"]["processes"]["running"],
                                              "draining": groups["site"]["processes"]["draining"],
                                              "configured": 2, "maximum": 2}
        assert groups["other"]["processes"]["configured"] == 1
        # Every worker of each group, as the supervisor knows them (draining ones too).
        for name in ("site", "other"):
            wait_until(lambda: set(srv.workers(name)) <= {w["pid"] for w in _groups(_status(srv))[name]["workers"]},
                       10, message=f"every worker of {name} on the page")
        # The stuck request's age grows; its path has no query string.
        grown = wait_until(lambda: (w := _worker_running(_status(srv), "/app/drip"))
                           and w["oldest_request"]["age_seconds"] >= first_age + 1.0 and w, 10,
                           message="the slow request's age growing")
        assert "secret" not in json.dumps(page), "no query string on the page"
        # While the load runs, the count is what was answered, within the requests in flight
        # (a worker counts a request when its application returns, around when the client
        # gets the answer), and the drip.
        for _ in range(5):
            low = answered.value
            served = _served(_status(srv)) - served_before
            high = answered.value
            assert low - CONCURRENCY - 1 <= served <= high + CONCURRENCY + 1, (low, served, high)
        note(f"status under load: the drip's age {first_age:.2f}s then {grown['oldest_request']['age_seconds']:.2f}s; "
             f"site served {groups['site']['requests_served']}")

    assert drip.response is not None and drip.response.status_code == 200
    assert drip.response.text.endswith("done\n")
    result = load.result
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    after = wait_until(lambda: (p := _status(srv)) and _served(p) - served_before == result.requests + 1 and p, 10,
                       message=f"requests served adding up to {result.requests} + 1")
    site = _groups(after)["site"]
    assert site["recycles"]["maximum-requests"] >= 2, site["recycles"]
    note(f"status: {result.summary()}; served {_served(after) - served_before} by the board, "
         f"{site['recycles']['maximum-requests']} recycles at maximum-requests")
    # The counts hold across a graceful restart: the supervisor and its board are kept.
    srv.graceful()
    kept = _status(srv)
    assert _served(kept) >= _served(after), (_served(kept), _served(after))
    assert _groups(kept)["site"]["supervisor_pid"] == site["supervisor_pid"]


def _raw_get(port: int, target: bytes, seconds: float) -> bytes:
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.sendall(b"GET " + target + b"?seconds=" + str(seconds).encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_html_escapes_a_hostile_path_and_json_keeps_it(apache):
    srv = apache(_site, ready_path="/app/hello", extra_modules=("authz_host", "status"))
    hostile = b"/app/<b>x\"'&\xff/drip"
    answers: list[bytes] = []
    thread = threading.Thread(target=lambda: answers.append(_raw_get(srv.port, hostile, 5)), daemon=True)
    thread.start()
    try:
        shown = "/app/<b>x\"'&%FF/drip"
        wait_until(lambda: _worker_running(_status(srv), shown), 10, message="the hostile path on the board")
        html = srv.get(STATUS)
        assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
        assert "<b>x" not in html.text, "a path is escaped"
        assert "/app/&lt;b&gt;x&quot;&#39;&amp;%FF/drip" in html.text or \
            "/app/&lt;b&gt;x&quot;'&amp;%FF/drip" in html.text, html.text
        assert "<script" not in html.text.lower()
        assert "Group site" in html.text and "Group other" in html.text
    finally:
        thread.join(timeout=60)
    assert answers and answers[0].startswith(b"HTTP/1.1 200"), answers[:1]


def test_refresh_accept_and_methods(apache):
    srv = apache(_site, ready_path="/app/hello", extra_modules=("authz_host", "status"))
    r = srv.get(f"{STATUS}?refresh=5")
    assert r.status_code == 200 and r.headers.get("Refresh") == "5", dict(r.headers)
    assert srv.get(f"{STATUS}?refresh").headers.get("Refresh") == "1"
    assert "Refresh" not in srv.get(STATUS).headers
    r = srv.get(STATUS, headers={"Accept": "application/json"})
    assert r.headers["Content-Type"].startswith("application/json") and r.json()["groups"]
    auto = srv.get(f"{STATUS}?auto")
    assert auto.headers["Content-Type"].startswith("text/plain")
    assert re.search(r"^SwiftGateway\.site\.RequestsServed: \d+$", auto.text, re.M), auto.text
    r = requests.post(srv.url(STATUS), data=b"x", timeout=30)
    assert r.status_code == 405 and "GET" in r.headers.get("Allow", ""), (r.status_code, dict(r.headers))


def test_mod_status_shows_the_section_and_auto_the_lines(apache):
    srv = apache(_site, ready_path="/app/hello", extra_modules=("authz_host", "status"))
    page = srv.get("/server-status")
    assert page.status_code == 200
    assert "<h2>SwiftGateway</h2>" in page.text and "Group site" in page.text, page.text[-2000:]
    auto = srv.get("/server-status?auto")
    assert "ServerUptimeSeconds" in auto.text
    lines = dict(line.split(": ", 1) for line in auto.text.splitlines() if line.startswith("SwiftGateway"))
    assert lines["SwiftGatewayGroups"] == "2"
    for group in ("site", "other"):
        for key in ("ProcessesRunning", "ProcessesConfigured", "ProcessesMaximum", "RequestsWaiting",
                    "RequestsServed", "Recycles.maximum-requests", "Restarts.crashed", "ConnectionsWaiting"):
            assert re.fullmatch(r"\d+", lines[f"SwiftGateway.{group}.{key}"]), (group, key, lines)
    assert lines["SwiftGateway.site.ProcessesConfigured"] == "2"


def test_no_page_without_the_handler(apache):
    srv = apache(lambda s: "\n".join([
        s.daemon("site", "processes=1", "threads=2"),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias /app {s.bin}",
    ]), ready_path="/app/hello")
    for path in (STATUS, f"{STATUS}?json", f"{STATUS}?auto"):
        r = srv.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])


def test_a_supervisor_restarted_by_apache_takes_the_same_board(apache):
    srv = apache(_site, ready_path="/app/hello", extra_modules=("authz_host", "status"))
    srv.wait_workers("site", 2)
    for _ in range(20):
        assert srv.get("/app/hello").status_code == 200
    before = _groups(_status(srv))["site"]
    assert before["requests_served"] >= 20
    old = srv.supervisors()["site"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: srv.supervisors().get("site") not in (None, old), 30, message="a new supervisor")
    page = wait_until(lambda: (g := _groups(_status(srv))["site"])["supervisor_pid"] not in (0, old)
                      and len([w for w in g["workers"] if w["accepting"] and w["state"] == "ready"]) >= 2 and g,
                      60, message="the new supervisor's workers on the board")
    assert page["requests_served"] >= before["requests_served"], (page["requests_served"], before["requests_served"])


def test_a_group_handed_to_a_new_supervisor_shows_its_new_board(apache):
    """A graceful restart with a changed group: a new supervisor, a new board that the new
    generation's children read; the unchanged group keeps its supervisor, board and counts."""
    srv = apache(lambda s: _site(s, "env=SG_DEPLOY=one"), ready_path="/app/hello",
                 extra_modules=("authz_host", "status"))
    srv.wait_workers("site", 2)
    for path in ["/app/hello"] * 10 + ["/app/other/hello"] * 5:
        assert srv.get(path).status_code == 200
    before = _groups(_status(srv))
    assert before["site"]["requests_served"] >= 10 and before["other"]["requests_served"] >= 5
    srv.configure(_site(srv, "env=SG_DEPLOY=two"), extra_modules=("authz_host", "status"), port=srv.port)
    srv.graceful()
    after = wait_until(lambda: (g := _groups(_status(srv)))["site"]["supervisor_pid"]
                       not in (0, before["site"]["supervisor_pid"])
                       and sum(w["accepting"] for w in g["site"]["workers"]) >= 2 and g,
                       60, message="the new supervisor of site on the page")
    assert after["site"]["requests_served"] < before["site"]["requests_served"], "a new board"
    assert after["other"]["supervisor_pid"] == before["other"]["supervisor_pid"]
    assert after["other"]["requests_served"] >= before["other"]["requests_served"]
    assert srv.get("/app/hello").status_code == 200
