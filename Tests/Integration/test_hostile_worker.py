"""A hostile worker (hostile_worker.py, a group's program that speaks FastCGI as a malicious
worker would): malformed records, hostile header blocks, floods, END_REQUEST where it does not
belong. Each case gets a clear answer (the status below, or a client connection aborted
mid-body when the response had begun), a bounded error log (one line for the case, never the
flood), and Apache's children survive it and serve the next request, from the hostile group
and from a real one."""

from __future__ import annotations

import http.client
import os
import re
import time
from dataclasses import dataclass

import pytest

from sg_harness import HOST, MIB, ApacheServer, duplex_request, note

HOSTILE_PROGRAM = os.path.join(os.path.dirname(__file__), "hostile_worker.py")
SOCKET_TIMEOUT = 3          # the hostile group's: how long a silent worker is waited for
REQUEST_TIMEOUT = 2         # the timed group's: its backstop ends a worker that never stops
LOG_LIMIT = 16 * 1024       # what one ordinary case may add to the error log
FLOOD_LOG_LIMIT = 2 * MIB   # a STDERR flood: the module logs 1 MiB of it per request
CRASH_LINES = re.compile(r"exit signal|AH00052|Segmentation fault|AH00051|child process .* exited")

ABORTED = "aborted"   # the response began (status and headers sent), then the connection closed


@dataclass(frozen=True)
class Case:
    status: int
    log: str | None             # a regular expression one new error-log line matches
    aborted: bool = False       # the client connection is closed mid-body
    body: bytes | None = None   # the whole body, when the answer is complete
    group: str = "hostile"
    log_limit: int = LOG_LIMIT
    upload: int = 0             # bytes of request body (sent while the answer is read)


def sg(code: str, text: str) -> str:
    return rf"{code}: group hostile\S*: {text}"


BAD_HEADERS = "bad response headers from the worker: "
CLOSED = sg("SG0502", "the worker closed the connection before sending response headers")
NO_HEADERS = sg("SG0505", "the worker ended the request without complete response headers")
TRUNCATED = sg("SG0510", r"response truncated after \d+ body bytes: the worker closed the connection")

CASES: dict[str, Case] = {
    "ok": Case(200, None, body=b"ok\n"),
    # records with wrong lengths, padding, request ids, versions and types
    "content-longer-than-sent": Case(502, CLOSED),
    "content-longer-than-sent-in-body": Case(200, TRUNCATED, aborted=True),
    "stderr-content-longer-than-sent": Case(502, CLOSED),
    "end-request-on-request-id-0": Case(502, CLOSED),   # a management record: skipped
    "padding-cut-short": Case(200, TRUNCATED, aborted=True),
    "header-cut-short": Case(502, CLOSED),
    "every-type-with-wrong-lengths": Case(200, sg("SG0507", "ignored FastCGI record type 1$"), body=b"ok\n"),
    "end-request-empty": Case(200, None, body=b"ok\n"),
    "end-request-short": Case(200, None, body=b"ok\n"),
    "end-request-longest": Case(200, None, body=b"ok\n"),
    "end-request-unknown-protocol-status": Case(200, None, body=b"ok\n"),
    "request-id-2": Case(502, sg("SG0511", r".*FastCGI request id 2 \(expected 1\)")),
    "request-id-65535-in-body": Case(502, sg("SG0511", r".*FastCGI request id 65535 \(expected 1\)")),
    "stdout-on-request-id-0": Case(502, NO_HEADERS + r" \(0 header bytes"),
    "version-0": Case(502, sg("SG0511", r".*FastCGI version 0 \(expected 1\)")),
    "version-255-in-body": Case(502, sg("SG0511", r".*FastCGI version 255 \(expected 1\)")),
    "unknown-types": Case(200, sg("SG0507", "ignored FastCGI record type 11$"), body=b"ok\n"),
    "unknown-types-flood": Case(200, sg("SG0507", "ignored FastCGI record type 200$"), body=b"ok\n"),
    "waiting-flood": Case(200, sg("SG0518", r"the worker's request slots are all running"), body=b"ok\n"),
    "waiting-then-silent": Case(504, sg("SG0503", f"no response headers within socket-timeout={SOCKET_TIMEOUT} s")),
    # header blocks
    "header-64k-one-field": Case(502, sg("SG0504", BAD_HEADERS + "the header block exceeds header-buffer-size")),
    "header-10k-line-then-status": Case(502, sg("SG0504", BAD_HEADERS + "a header line longer than httpd's CGI "
                                                 r"header parser takes \(8191 bytes\)")),
    "endless-header-block": Case(502, sg("SG0504", BAD_HEADERS + "the header block exceeds header-buffer-size")),
    "slow-endless-header-block": Case(504, sg("SG0519", rf"no complete response within request-timeout={REQUEST_TIMEOUT} s"),
                                      group="hostile-timed"),
    "nul-in-name": Case(502, sg("SG0504", BAD_HEADERS + "a NUL byte in the header block")),
    "nul-in-value": Case(502, sg("SG0504", BAD_HEADERS + "a NUL byte in the header block")),
    "cr-in-name": Case(502, sg("SG0504", BAD_HEADERS + "a bare CR in the header block")),
    "cr-in-value": Case(502, sg("SG0504", BAD_HEADERS + "a bare CR in the header block")),
    "lf-in-name": Case(502, sg("SG0504", BAD_HEADERS + "a header line without ':'")),
    "lf-in-value": Case(502, sg("SG0504", BAD_HEADERS + "an invalid character in a header name")),
    "obs-fold-space": Case(502, sg("SG0504", BAD_HEADERS + "an invalid character in a header name")),
    "obs-fold-tab": Case(502, sg("SG0504", BAD_HEADERS + "an invalid character in a header name")),
    "status-garbage": Case(502, sg("SG0504", BAD_HEADERS + "invalid Status 0")),
    "status-empty": Case(502, sg("SG0504", BAD_HEADERS + "invalid Status 0")),
    "status-negative": Case(502, sg("SG0504", BAD_HEADERS + "invalid Status -200")),
    "status-1000": Case(502, sg("SG0504", BAD_HEADERS + "invalid Status 1000")),
    "status-99": Case(502, sg("SG0504", BAD_HEADERS + "invalid Status 99")),
    "status-100": Case(502, sg("SG0504", BAD_HEADERS + "an interim Status 100 as the final one")),
    "status-101": Case(502, sg("SG0504", BAD_HEADERS + "an interim Status 101 as the final one")),
    "status-103": Case(502, sg("SG0504", BAD_HEADERS + "an interim Status 103 as the final one")),
    "location-cr": Case(502, sg("SG0504", BAD_HEADERS + "a bare CR in the header block")),
    # after the blank line it is body, framed by Apache: never a second response
    "location-crlf-crlf": Case(302, None, body=b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\nok\n"),
    "location-lf-then-header": Case(302, None, body=b"ok\n"),
    "split-10000-one-byte-records": Case(200, None, body=b"ok\n"),
    # STDERR floods: 1 GiB each, answered; the log gets 1 MiB and two lines about the rest
    "stderr-flood-lines": Case(200, r"SG0551: group hostile: \d{9,} bytes of the worker's STDERR lines",
                               body=b"ok\n", log_limit=FLOOD_LOG_LIMIT),
    "stderr-flood-one-line": Case(200, r"SG0551: group hostile: \d{9,} bytes of the worker's STDERR lines",
                                  body=b"ok\n", log_limit=FLOOD_LOG_LIMIT),
    # END_REQUEST before and in the middle of STDOUT, STDOUT after it
    "end-request-first": Case(502, NO_HEADERS + r" \(0 header bytes"),
    "end-request-mid-headers": Case(502, NO_HEADERS + r" \(34 header bytes"),
    "end-request-mid-body": Case(200, None, body=b"first half\n"),
    "end-request-inside-a-stdout-record": Case(200, TRUNCATED, aborted=True),
    "stdout-after-end-request": Case(200, None, body=b"ok\n"),
    # a worker that stops reading its STDIN mid-upload
    "stops-reading-stdin": Case(504, sg("SG0503", f"no response headers within socket-timeout={SOCKET_TIMEOUT} s"),
                                upload=16 * MIB),
}


def _config(srv: ApacheServer, program: str) -> str:
    return "\n".join([
        srv.daemon("site", "processes=1", "threads=4"),
        srv.daemon("hostile", f"program={program}", "processes=1", "threads=10",
                   f"socket-timeout={SOCKET_TIMEOUT}", "header-buffer-size=64K"),
        srv.daemon("hostile-timed", f"program={program}", "processes=1", "threads=10",
                   f"request-timeout={REQUEST_TIMEOUT}"),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias /site {srv.bin}",
        "<Location /hostile>",
        "    SetHandler swift-gateway",
        "    SwiftProcessGroup hostile",
        "</Location>",
        "<Location /hostile-timed>",
        "    SetHandler swift-gateway",
        "    SwiftProcessGroup hostile-timed",
        "</Location>",
    ])


@pytest.fixture(scope="module")
def server(artifacts):
    """One Apache for every case: a case that harmed a child shows in its own test."""
    srv = ApacheServer(artifacts, name="hostile-worker")
    try:
        srv.configure(_config(srv, srv.install_program(HOSTILE_PROGRAM)))
        srv.start(ready_path="/site/hello")
        srv.wait_ready("/hostile/ok", expect_gateway=False)
        srv.wait_ready("/hostile-timed/ok", expect_gateway=False)
        yield srv
    finally:
        problems = srv.stop_everything()
        if problems:
            print("teardown: " + "; ".join(problems))
        srv.cleanup()


def _fetch(srv: ApacheServer, path: str) -> tuple[int, bytes | None]:
    """(status, whole body), or (status, None) when the connection closed mid-body."""
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        try:
            return response.status, response.read()
        except http.client.IncompleteRead:
            return response.status, None
    finally:
        conn.close()


def _upload(srv: ApacheServer, path: str, size: int) -> tuple[int, bytes | None]:
    result = duplex_request(srv.port, "POST", path, (b"u" * MIB for _ in range(size // MIB)), size,
                            stall_timeout=30, total_timeout=60)
    assert result.status, f"no answer to the upload: {result.error or result.send_error}"
    return result.status, b"" if not result.error else None


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_worker_gets_a_clear_answer_a_bounded_log_and_harms_no_child(server, name):
    case = CASES[name]
    children = sorted(server.apache_children())
    offset = server.log_offset()
    path = f"/{case.group}/{name}"
    started = time.monotonic()
    status, body = _upload(server, path, case.upload) if case.upload else _fetch(server, path)
    seconds = time.monotonic() - started

    assert status == case.status, (name, status, body[:300] if body else body)
    if case.aborted:
        assert body is None, f"{name}: expected the client connection aborted mid-body, got {body!r}"
    elif case.body is not None:
        assert body == case.body, (name, body[:300] if body else body)
    line = server.wait_for_log(re.compile(case.log), since=offset) if case.log else "-"

    # the next requests are served, by the hostile group and by a real one, from the same children
    assert _fetch(server, f"/{case.group}/ok") == (200, b"ok\n")
    assert server.get("/site/hello").status_code == 200
    log = server.error_log_text(offset)
    growth = server.log_offset() - offset
    assert not CRASH_LINES.search(log), f"{name}: {CRASH_LINES.search(log).group(0)!r} in the error log"
    assert sorted(server.apache_children()) == children, f"{name}: Apache's children changed"
    assert growth <= case.log_limit, f"{name}: the error log grew by {growth} bytes"
    answer = ABORTED if case.aborted else str(status)
    shown = re.sub(r" \(?socket [^)]*\)?", "", line.split("] ", 4)[-1])[:150] if case.log else "no line"
    note(f"hostile worker {name}: {answer} in {seconds:.2f}s, error log +{growth} B, {shown}")
