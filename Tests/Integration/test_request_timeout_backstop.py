"""request-timeout's backstop in Apache, and the lifecycle options as the supervisor gets them.

The supervisor gives up on a request running longer than `request-timeout` S, and the worker
then answers 504 itself. A worker whose event loop is blocked (application code that never
suspends) cannot answer: Apache gives up itself S + 1.5 s after the request went to the worker
(or after the worker said it started a request it had queued): 504 if no response header was
passed to the client, an aborted connection otherwise, one SG0519 line, and the connection to
the worker is closed, never reused. Other groups go on; a request within its time, or under
`request-timeout=0`, is never cut.

The fixture's fault pages (`/spin`, `/never-return`, `/sleep`) show it with real workers; a
stand-in program (fake_fastcgi_program.py, FAKE_MODE=timeouts) shows what the fixture cannot: a
response cut after its headers, and the slot notices by which a worker says it queued a request
and started it.
Under a supervisor that acts on `request-timeout` the assertions hold as they are: `/spin`
still blocks its worker's event loop, `/never-return` gets its 504 from one side or the
other within the bound."""

from __future__ import annotations

import os
import re
import socket
import time

import requests

from sg_harness import BackgroundLoad, note, proc_environ

# 504 within request-timeout + 2 s (here S = 2): the backstop answers at 3.5 s.
BOUND = 4.0
FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"
SG0519 = re.compile(r"SG0519: group (\S+): no complete response within request-timeout=(\d+) s "
                    r"\+ 1\.5 s from the worker \(pid (\w+), socket [^)]*\).*; "
                    r"(answering 504|aborting the client connection)")


def _fixture_site(s, *groups: tuple[str, tuple[str, ...]]) -> str:
    """Group `other` (defaults) at /, each of `groups` at /NAME/, all running the fixture."""
    lines = [s.daemon("other", "processes=1")]
    for name, options in groups:
        lines.append(s.daemon(name, *options))
    lines += ["SwiftProcessGroup other", f"SwiftScriptAlias / {s.bin}"]
    for name, _ in groups:
        lines += [f"<Location /{name}/>", f"    SwiftProcessGroup {name}", "</Location>"]
    return "\n".join(lines)


def _timed_get(srv, path: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    r = requests.get(srv.url(path), timeout=30)
    return r, time.monotonic() - started


def _backstop_lines(srv, since: int, group: str) -> list[re.Match]:
    return [m for m in SG0519.finditer(srv.error_log_text(since)) if m.group(1) == group]


def test_a_request_that_never_suspends_gets_apaches_504_while_other_groups_go_on(apache):
    srv = apache(lambda s: _fixture_site(
        s, ("stuck", ("processes=1", "request-timeout=2", "shutdown-timeout=1", FAULTS))))
    since = srv.log_offset()
    with BackgroundLoad(srv.port, "/hello", concurrency=4) as load:
        r, elapsed = _timed_get(srv, "/stuck/spin")
        after = srv.get("/hello")
    note(f"request-timeout=2, /spin: {r.status_code} after {elapsed:.2f}s; "
         f"group other meanwhile: {load.result.summary()}")
    assert r.status_code == 504, (r.status_code, r.text[:200])
    assert elapsed < BOUND, elapsed
    # Whichever comes first answers 504: the supervisor, killing a worker that did not act on
    # the cancel a second after request-timeout (SG1020, then Apache's SG0520), or Apache's
    # own backstop at request-timeout + 1.5 s (SG0519).
    log = srv.error_log_text(since)
    lines = _backstop_lines(srv, since, "stuck")
    killed = re.findall(r"SG0520: group stuck: .*request-timeout=2 s.*answering 504", log)
    assert len(lines) + len(killed) == 1, log[-3000:]
    if lines:
        assert lines[0].group(2) == "2" and lines[0].group(4) == "answering 504"
    else:
        assert "SG1020" in log, log[-3000:]
    assert after.status_code == 200 and after.headers["X-Gateway-Group"] == "other"
    assert load.result.requests > 0
    assert load.result.failures == [], load.result.summary()


def test_requests_within_their_time_or_without_a_limit_are_never_cut(apache):
    srv = apache(lambda s: _fixture_site(
        s, ("timed", ("request-timeout=2", FAULTS)), ("open", ("request-timeout=0", FAULTS))))
    since = srv.log_offset()
    r, elapsed = _timed_get(srv, "/timed/sleep?ms=1000")
    assert r.status_code == 200 and elapsed >= 1.0, (r.status_code, elapsed)
    r, elapsed = _timed_get(srv, "/open/sleep?ms=2500")
    assert r.status_code == 200 and elapsed >= 2.5, (r.status_code, elapsed)
    assert _backstop_lines(srv, since, "timed") == [] and _backstop_lines(srv, since, "open") == []
    # a task that awaits forever: answered 504 within the bound (by the backstop here, or by
    # the worker once its supervisor gives up on the request), and the group goes on
    r, elapsed = _timed_get(srv, "/timed/never-return")
    note(f"request-timeout=2, /never-return: {r.status_code} after {elapsed:.2f}s")
    assert r.status_code == 504 and elapsed < BOUND, (r.status_code, elapsed)
    assert srv.get("/timed/sleep?ms=10").status_code == 200


def test_the_lifecycle_options_reach_the_supervisor(apache):
    srv = apache(lambda s: _fixture_site(
        s, ("limits", ("request-timeout=7", "startup-timeout=20", "memory-limit=4G",
                       "virtual-memory-limit=64G", "cpu-time-limit=3600", "executor=thread-pool"))))
    supervisors = srv.supervisors()
    limits, other = proc_environ(supervisors["limits"]), proc_environ(supervisors["other"])
    assert {k: v for k, v in limits.items() if k in DEFAULTS} == {
        "SWIFT_GATEWAY_REQUEST_TIMEOUT": "7",
        "SWIFT_GATEWAY_STARTUP_TIMEOUT": "20",
        "SWIFT_GATEWAY_MEMORY_LIMIT": str(4 << 30),
        "SWIFT_GATEWAY_VIRTUAL_MEMORY_LIMIT": str(64 << 30),
        "SWIFT_GATEWAY_CPU_TIME_LIMIT": "3600",
        "SWIFT_GATEWAY_EXECUTOR": "thread-pool",
    }
    assert {k: v for k, v in other.items() if k in DEFAULTS} == DEFAULTS
    assert srv.get("/limits/hello").status_code == 200


# The variables of a group without lifecycle options (GroupSettings' defaults).
DEFAULTS = {
    "SWIFT_GATEWAY_REQUEST_TIMEOUT": "60",
    "SWIFT_GATEWAY_STARTUP_TIMEOUT": "15",
    "SWIFT_GATEWAY_MEMORY_LIMIT": "0",
    "SWIFT_GATEWAY_VIRTUAL_MEMORY_LIMIT": "0",
    "SWIFT_GATEWAY_CPU_TIME_LIMIT": "0",
    "SWIFT_GATEWAY_EXECUTOR": "event-loop",
}


def test_configtest_refuses_an_unknown_executor(new_server):
    srv = new_server()
    srv.configure(_fixture_site(srv, ("odd", ("executor=green-threads",))))
    res = srv.configtest()
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "SwiftDaemonProcess odd: option 'executor=green-threads': 'green-threads' is not an executor; " \
           "expected event-loop or thread-pool" in out, out


# ---------------------------------------------------------------------------------------------
# A stand-in group program (fake_fastcgi_program.py, FAKE_MODE=timeouts): what each request gets
# is chosen by its QUERY_STRING.


def _stand_in_site(s) -> str:
    return s.fake_program_config("timeouts", "request-timeout=2")


def test_a_silent_worker_gets_504_and_its_connection_closed(apache):
    srv = apache(_stand_in_site, ready_path=None)
    since = srv.log_offset()
    r, elapsed = _timed_get(srv, "/fake?stall")
    assert r.status_code == 504 and elapsed < BOUND, (r.status_code, elapsed)
    srv.wait_for_log("stand-in: Apache closed stall", since=since)
    [line] = _backstop_lines(srv, since, "fake")
    assert (line.group(3), line.group(4)) == ("unknown", "answering 504")


def test_a_response_cut_after_its_headers_aborts_the_client_connection(apache):
    srv = apache(_stand_in_site, ready_path=None)
    since = srv.log_offset()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as client:
        client.sendall(b"GET /fake?head-then-stall HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    elapsed = time.monotonic() - started
    # the headers and the first line reached the client, then the connection was closed
    # without the final chunk: a broken response, never a clean short one
    assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200]
    assert b"the first line\n" in received and not received.endswith(b"0\r\n\r\n"), received
    assert elapsed < BOUND, elapsed
    srv.wait_for_log("stand-in: Apache closed head-then-stall", since=since)
    [line] = _backstop_lines(srv, since, "fake")
    assert line.group(4) == "aborting the client connection"


def test_a_body_the_worker_never_reads_gets_504(apache):
    srv = apache(_stand_in_site, ready_path=None)
    since = srv.log_offset()
    body = os.urandom(1 << 20)  # streamed (longer than 16 KiB): more than the socket takes
    started = time.monotonic()
    r = requests.post(srv.url("/fake?unread"), data=body, timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == 504 and elapsed < BOUND, (r.status_code, elapsed)
    assert len(_backstop_lines(srv, since, "fake")) == 1


def test_a_queued_request_is_timed_from_when_the_worker_starts_it(apache):
    srv = apache(_stand_in_site, ready_path=None)
    since = srv.log_offset()
    # 3 s in the worker's queue, then 2 s running: 5 s in all, within request-timeout=2 + 1.5
    r, elapsed = _timed_get(srv, "/fake?queued")
    assert (r.status_code, r.text) == (200, "ok\n") and elapsed >= 5.0, (r.status_code, elapsed)
    assert _backstop_lines(srv, since, "fake") == []
    # started at once, then silent: given up on, naming the pid the worker gave
    r, elapsed = _timed_get(srv, "/fake?queued-stall")
    assert r.status_code == 504 and elapsed < BOUND, (r.status_code, elapsed)
    [line] = _backstop_lines(srv, since, "fake")
    assert line.group(3) == "4242"
