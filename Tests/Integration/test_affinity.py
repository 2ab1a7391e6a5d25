"""Session affinity (issue 22): `affinity-cookie=NAME` pins a client to the worker that served it.

Every response of a group with affinity to a request that carried no valid route to its worker
sets `NAME=<route>`; a request carrying a valid route goes to that worker's own socket, waits for
it when its slots are busy (503 + Retry-After after queue-timeout, never another worker), and
goes to any worker, which sets a new route, once that worker is gone. A route that is not one of
the group's is ignored (SG0640, debug). Without the option nothing changes: no cookie."""

from __future__ import annotations

import base64
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie

import requests

from sg_harness import HOST, note, wait_until

COOKIE = "SGROUTE"
FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"
ROUTE = re.compile(r"^[A-Za-z0-9_-]{32}$")
# A request or a worker lost: a crash, a worker killed while draining, a 5xx of the module.
TROUBLE = re.compile(r"SG1014|SG1015|SG1104|SG050[2-6]|SG0510|SG041[3-6]|SG0642|SG112[4-6]")


def _site(s, *options: str, mount: str = "/", group: str = "site") -> str:
    alias = f"SwiftScriptAlias {mount} {s.bin}"
    return "\n".join([
        s.daemon(group, f"affinity-cookie={COOKIE}", *options),
        f"SwiftProcessGroup {group}\n{alias}" if mount == "/" else f"{alias} process-group={group}",
    ])


def _set_cookie(response: requests.Response) -> dict[str, str] | None:
    """The attributes of the response's NAME cookie (value under "value"), or None."""
    header = response.headers.get("Set-Cookie")
    if header is None:
        return None
    jar = SimpleCookie()
    jar.load(header)
    if COOKIE not in jar:
        return None
    morsel = jar[COOKIE]
    found = {"value": morsel.value, "path": morsel["path"], "samesite": morsel["samesite"],
             "httponly": "httponly" if re.search(r";\s*HttpOnly", header) else "",
             "secure": "secure" if re.search(r";\s*Secure", header) else ""}
    return found


def _pid(response: requests.Response) -> int:
    return int(response.headers["X-Gateway-Pid"])


def _get(srv, path: str, route: str | None = None, timeout: float = 30) -> requests.Response:
    headers = {"Cookie": f"{COOKIE}={route}"} if route is not None else {}
    return srv.get(path, headers=headers, timeout=timeout)


def _pin(srv, path: str = "/env") -> tuple[str, int]:
    """A first request without a cookie: its route and the pid that set it."""
    r = _get(srv, path)
    assert r.status_code == 200, r.status_code
    cookie = _set_cookie(r)
    assert cookie is not None, dict(r.headers)
    assert ROUTE.match(cookie["value"]), cookie
    return cookie["value"], _pid(r)


def _above_debug(text: str) -> list[str]:
    """Error-log lines of a level above debug."""
    return [line for line in text.splitlines()
            if line.strip() and not re.search(r":(debug|trace\d)\]", line)]


def test_a_client_keeping_its_cookie_stays_on_one_worker_and_new_clients_spread(apache):
    srv = apache(lambda s: _site(s, "processes=3", "threads=10", FAULTS))
    srv.wait_workers("site", 3)
    session = requests.Session()
    first = session.get(srv.url("/env"), timeout=30)
    assert first.status_code == 200
    cookie = _set_cookie(first)
    assert cookie is not None and ROUTE.match(cookie["value"]), dict(first.headers)
    assert cookie["path"] == "/" and cookie["httponly"] and cookie["samesite"] == "Lax", cookie
    assert not cookie["secure"], "plain HTTP: no Secure"
    pinned = _pid(first)
    pids, set_again = [pinned], 0
    for _ in range(99):
        r = session.get(srv.url("/hello"), timeout=30)
        assert r.status_code == 200, r.status_code
        pids.append(_pid(r))
        set_again += _set_cookie(r) is not None
    assert set(pids) == {pinned}, f"the pinned client reached {sorted(set(pids))}"
    assert set_again == 0, "a request with a valid route to its worker gets no new cookie"

    # 30 clients without cookies at once, each request longer than a moment: spread over all.
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(lambda _: _get(srv, "/sleep?ms=300"), range(30)))
    assert [a.status_code for a in answers] == [200] * 30
    spread = {_pid(a) for a in answers}
    assert len(spread) == 3, f"30 new clients reached {spread}"
    routes = {}
    for a in answers:
        c = _set_cookie(a)
        assert c is not None and ROUTE.match(c["value"]), dict(a.headers)
        routes.setdefault(_pid(a), set()).add(c["value"])
    assert all(len(v) == 1 for v in routes.values()), "one route per worker"
    assert len({next(iter(v)) for v in routes.values()}) == 3, "distinct routes"
    note(f"affinity: 100 of 100 requests on pid {pinned}; 30 new clients on {len(spread)} workers")


def test_the_cookie_path_is_the_mount(apache):
    """(Secure over HTTPS: WorkerRouteTests; the test servers speak plain HTTP.)"""
    srv = apache(lambda s: _site(s, "processes=1", mount="/app"), ready_path="/app/env")
    srv.wait_workers("site", 1)
    r = _get(srv, "/app/env")
    cookie = _set_cookie(r)
    assert cookie is not None and cookie["path"] == "/app", r.headers.get("Set-Cookie")


def test_a_gone_worker_is_replaced_by_another_with_a_new_route(apache):
    """SIGKILL of the pinned worker, then a recycle (maximum-requests): the client's next request
    is 200 from another worker, which sets a new route, and the client stays there."""
    srv = apache(lambda s: _site(s, "processes=3", "threads=5", "maximum-requests=40"))
    srv.wait_workers("site", 3)
    since = srv.log_offset()
    route, pinned = _pin(srv)

    # SIGKILL
    os.kill(pinned, signal.SIGKILL)
    wait_until(lambda: pinned not in srv.workers("site"), 10, message="the killed worker reaped")
    r = _get(srv, "/env", route)
    assert r.status_code == 200, r.status_code
    assert _pid(r) != pinned
    cookie = _set_cookie(r)
    assert cookie is not None and cookie["value"] != route, r.headers.get("Set-Cookie")
    route, pinned = cookie["value"], _pid(r)
    for _ in range(3):
        again = _get(srv, "/env", route)
        assert again.status_code == 200 and _pid(again) == pinned and _set_cookie(again) is None

    # A recycle: the client keeps its route until the worker reaches maximum-requests.
    moves = 0
    for _ in range(200):
        r = _get(srv, "/hello", route)
        assert r.status_code == 200, r.status_code
        if _pid(r) != pinned:
            cookie = _set_cookie(r)
            assert cookie is not None and cookie["value"] != route, r.headers.get("Set-Cookie")
            route, pinned = cookie["value"], _pid(r)
            moves += 1
        else:
            assert _set_cookie(r) is None
        if moves >= 2:
            break
    assert moves >= 2, "the pinned worker was recycled twice within 200 requests"
    log = srv.error_log_text(since)
    assert "SG1013" in log, "recycled at maximum-requests"
    assert [line for line in log.splitlines() if TROUBLE.search(line)] == []


def test_a_rolling_reload_moves_pinned_clients_to_new_workers_without_a_failure(apache):
    srv = apache(lambda s: _site(s, "processes=2", "threads=5"))
    old = set(srv.wait_workers("site", 2))
    since = srv.log_offset()
    route, pinned = _pin(srv)
    supervisor = srv.supervisors()["site"]
    os.kill(supervisor, signal.SIGHUP)
    statuses, pids = [], []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = _get(srv, "/hello", route)
        statuses.append(r.status_code)
        if _pid(r) != pinned:
            cookie = _set_cookie(r)
            assert cookie is not None and cookie["value"] != route, r.headers.get("Set-Cookie")
            route, pinned = cookie["value"], _pid(r)
        pids.append(pinned)
        if "SG1022" in srv.error_log_text(since) and not set(srv.workers("site")) & old:
            break
        time.sleep(0.01)
    assert set(statuses) == {200}, statuses
    # The old workers are gone: a route still naming one moves to a new worker.
    r = _get(srv, "/hello", route)
    assert r.status_code == 200
    if _pid(r) != pinned:
        cookie = _set_cookie(r)
        assert cookie is not None and cookie["value"] != route, r.headers.get("Set-Cookie")
        route, pinned = cookie["value"], _pid(r)
    assert pinned not in old, "the client ends on a worker of the new roll"
    r = _get(srv, "/hello", route)
    assert r.status_code == 200 and _pid(r) == pinned and _set_cookie(r) is None
    log = srv.error_log_text(since)
    assert [line for line in log.splitlines() if TROUBLE.search(line)] == []
    note(f"rolling reload: {len(statuses)} pinned requests, all 200, over pids {sorted(set(pids))}")


def test_a_pinned_request_waits_for_its_busy_worker_while_others_serve_new_clients(apache):
    srv = apache(lambda s: _site(s, "processes=3", "threads=2", "queue-timeout=20", FAULTS))
    srv.wait_workers("site", 3)
    route, pinned = _pin(srv)
    since = srv.log_offset()
    with ThreadPoolExecutor(max_workers=3) as pool:
        # Both slots of the pinned worker: two slow requests with its route.
        slow = [pool.submit(_get, srv, "/sleep?ms=2500", route) for _ in range(2)]
        wait_until(lambda: len(re.findall(rf"sleeping 2500 ms on purpose in pid {pinned}",
                                          srv.error_log_text(since))) == 2, 10,
                   message="both slots of the pinned worker taken")
        started = time.monotonic()
        waiting = pool.submit(_get, srv, "/env", route)
        others = [_get(srv, "/hello") for _ in range(10)]
        assert [o.status_code for o in others] == [200] * 10
        assert pinned not in {_pid(o) for o in others}, "cookieless clients go to the others"
        pinned_answer = waiting.result(timeout=30)
        waited = time.monotonic() - started
        assert all(f.result().status_code == 200 for f in slow)
    assert pinned_answer.status_code == 200
    assert _pid(pinned_answer) == pinned, "served by its own worker, not a sibling"
    assert waited >= 1.0, waited
    note(f"a pinned request waited {waited:.2f}s for its busy worker")


def test_a_pinned_request_past_queue_timeout_gets_503_with_retry_after(apache):
    srv = apache(lambda s: _site(s, "processes=2", "threads=1", "queue-timeout=1", FAULTS))
    srv.wait_workers("site", 2)
    route, pinned = _pin(srv)
    since = srv.log_offset()
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(_get, srv, "/sleep?ms=2500", route)
        srv.wait_for_log(f"sleeping 2500 ms on purpose in pid {pinned}", since=since)
        waited = _get(srv, "/env", route)
        assert slow.result().status_code == 200
    assert waited.status_code == 503, (waited.status_code, waited.headers)
    assert waited.headers.get("Retry-After") == "1", dict(waited.headers)
    assert "X-Gateway-Pid" not in waited.headers, "not run by any worker"
    assert re.search(r"SG1120: .*queue-timeout", srv.error_log_text(since))


def test_forged_truncated_oversized_and_foreign_routes_are_ignored(apache):
    srv = apache(lambda s: "\n".join([
        _site(s, "processes=2"),
        _site(s, "processes=1", mount="/other", group="other"),
    ]), ready_path="/other/env")
    srv.wait_workers("site", 2)
    srv.wait_workers("other", 1)
    route, _ = _pin(srv)
    foreign = _set_cookie(_get(srv, "/other/env"))["value"]
    raw = bytearray(base64.urlsafe_b64decode(route))
    raw[-1] ^= 1
    forged_mac = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    raw = bytearray(base64.urlsafe_b64decode(route))
    raw[3] ^= 1  # another pid, the MAC of the first
    forged_pid = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    cases = {
        "forged MAC": forged_mac,
        "forged pid": forged_pid,
        "truncated": route[:-4],
        "padded": route + "AAAA",
        "8 KB": "A" * 8000,  # Apache's LimitRequestFieldSize (8190) bounds a header line
        "other group's": foreign,
        "not base64": "!" * 32,
        "empty": "",
    }
    since = srv.log_offset()
    for name, value in cases.items():
        r = _get(srv, "/env", value)
        assert r.status_code == 200, (name, r.status_code)
        cookie = _set_cookie(r)
        assert cookie is not None and ROUTE.match(cookie["value"]), (name, r.headers.get("Set-Cookie"))
        assert cookie["value"] != value
    # The route among other cookies, quoted, or after a bad one, still counts.
    r = srv.get("/env", headers={"Cookie": f'a=1; {COOKIE}=junk; {COOKIE}="{route}"; b=2'})
    assert r.status_code == 200 and _set_cookie(r) is None, r.headers.get("Set-Cookie")
    time.sleep(0.2)  # let the workers' lines reach the log (nothing to poll for: none expected)
    log = srv.error_log_text(since)
    assert _above_debug(log) == [], _above_debug(log)
    assert "SG0640" in log


def test_without_affinity_no_cookie_is_ever_set(apache):
    srv = apache(lambda s: "\n".join([
        s.daemon("site", "processes=2", FAULTS),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    srv.wait_workers("site", 2)
    session = requests.Session()
    for path in ["/env", "/hello", "/nonexistent", "/sleep?ms=1"] * 10:
        r = session.get(srv.url(path), timeout=30)
        assert "Set-Cookie" not in r.headers, (path, r.headers)
    r = _get(srv, "/env", "A" * 32)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert f"http://{HOST}" in srv.url("/")


def test_configtest_rejects_a_bad_cookie_name(new_server):
    for bad in ["a/b", "a=b", "a;b", "x" * 65]:
        srv = new_server()
        srv.configure(srv.seed_config() + f"\nSwiftDaemonProcess extra affinity-cookie={bad}")
        res = srv.configtest()
        out = res.stdout + res.stderr
        assert res.returncode != 0 and "affinity-cookie" in out and "not a cookie name" in out, out
