"""A hostile client against the real module: request smuggling (Content-Length with
Transfer-Encoding, two Content-Lengths), requests over Apache's 8 KiB line and field limits,
slow-loris headers and bodies against a group with one request slot, HTTP/2 streams reset
mid-upload. What reaches the application is what the fixture's pages show: `/echo` the body it
got, `/log` a line in the error log (so a smuggled `/log` request would show)."""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import threading
import time

import pytest

from sg_harness import APACHE_MODULES, HOST, MIB, note

SMUGGLED_LINE = "fixture log line from"    # what the fixture's /log page writes
CRASH_LINES = re.compile(r"exit signal|AH00052|Segmentation fault")


def _site(s, *extra: str, slow_options: tuple[str, ...] = ()) -> str:
    """Group site (4 slots) at /, group slow (one slot) at /slow."""
    return "\n".join([
        s.daemon("site", "processes=1", "threads=4"),
        s.daemon("slow", "processes=1", "threads=1", "connect-timeout=30", *slow_options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
        "<Location /slow>",
        "    SwiftProcessGroup slow",
        "</Location>",
        *extra,
    ])


class _Unclosable(io.BufferedReader):
    def close(self) -> None:
        pass   # http.client closes the file after each response: the next one follows in it


class _Stream:
    """What http.client.HTTPResponse needs of a socket: every response of a connection is
    read from one byte stream, in turn."""

    def __init__(self, data: bytes):
        self.file = _Unclosable(io.BytesIO(data))

    def makefile(self, *args, **kwargs):
        return self.file


def _exchange(port: int, raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Sends raw bytes on one connection, reads until Apache closes it; every response in it."""
    with socket.create_connection((HOST, port), timeout=30) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    stream = _Stream(data)
    responses = []
    while stream.file.peek(1):
        response = http.client.HTTPResponse(stream, method="POST")   # type: ignore[arg-type]
        response.begin()
        responses.append((response.status, dict(response.getheaders()), response.read()))
    return responses


# The last request of each attempt closes the connection, so Apache's answer ends.
CLOSING = b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
SMUGGLED = b"GET /log?smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

SMUGGLING = {
    # CL.TE: a front that honoured Content-Length would pass the smuggled request on as body
    "content-length-and-chunked": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(SMUGGLED)) + SMUGGLED + CLOSING,
    # TE.CL: the chunk carries the smuggled request; a server honouring Content-Length would
    # take the rest of the chunk as the next request
    "chunked-and-short-content-length": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n" + CLOSING,
    "two-content-lengths": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n"
    % len(SMUGGLED) + SMUGGLED + CLOSING,
    "content-length-list": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0, %d\r\n\r\n"
    % len(SMUGGLED) + SMUGGLED + CLOSING,
    "content-length-plus-sign": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +%d\r\n\r\n"
    % len(SMUGGLED) + SMUGGLED + CLOSING,
    "space-before-colon": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n"
    b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED + CLOSING,
    "chunked-not-last": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
    b"0\r\n\r\n" + SMUGGLED + CLOSING,
    "obfuscated-chunked": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED + CLOSING,
    "chunk-size-overflow": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"fffffffffffffffff1\r\nx\r\n0\r\n\r\n" + SMUGGLED + CLOSING,
    "bare-lf-in-chunk": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\nabc\n0\n\n" + SMUGGLED + CLOSING,
}


@pytest.mark.parametrize("attempt", list(SMUGGLING))
def test_no_smuggled_request_reaches_the_application(apache, attempt):
    srv = apache(_site)
    offset = srv.log_offset()
    responses = _exchange(srv.port, SMUGGLING[attempt])
    summary = [(status, headers.get("X-Gateway-Pid") is not None, body[:40]) for status, headers, body in responses]
    # the fixture's /hello (the closing request) answers "Hello world!": it comes last, if at all
    # Apache closes the connection after each of these requests: nothing behind it is read
    assert len(responses) == 1, (attempt, summary)
    first_status, first_headers, first_body = responses[0]
    assert all(body != b"logged\n" for _, _, body in responses), (attempt, summary)
    if first_status == 200:
        # Apache framed the body by the chunks: the echo got them, never a request behind them
        assert "X-Gateway-Pid" in first_headers, (attempt, summary)
        assert b"smuggled" not in first_body or first_body == SMUGGLED, (attempt, summary)
    else:
        assert 400 <= first_status < 500 or first_status == 501, (attempt, summary)
    srv.get("/hello")     # a request after the attempt, so that any line of it is in the log
    log = srv.error_log_text(offset)
    assert SMUGGLED_LINE not in log, (attempt, summary, log[-2000:])
    assert not CRASH_LINES.search(log), log[-2000:]
    note(f"hostile client smuggling {attempt}: responses {[(s, 'worker' if w else 'apache') for s, w, _ in summary]}")


LIMITS = {
    "8 KiB URL": (b"GET /log?" + b"a" * 8200 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 414),
    "8 KiB header field": (b"GET /log HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8200
                           + b"\r\nConnection: close\r\n\r\n", 400),
    "101 header fields": (b"GET /log HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-F-%d: v\r\n" % i for i in range(101))
                          + b"Connection: close\r\n\r\n", 400),
}


@pytest.mark.parametrize("what", list(LIMITS))
def test_requests_over_apaches_limits_never_reach_the_worker(apache, what):
    request_bytes, status = LIMITS[what]
    srv = apache(_site)
    offset = srv.log_offset()
    started = time.monotonic()
    ((got, headers, _),) = _exchange(srv.port, request_bytes)
    seconds = time.monotonic() - started
    assert got == status, (what, got, headers)
    assert "X-Gateway-Pid" not in headers, what
    srv.get("/hello")
    log = srv.error_log_text(offset)
    assert SMUGGLED_LINE not in log and "swift_gateway" not in log, log[-2000:]
    line = next((l for l in log.splitlines() if "AH0" in l), "no line")
    note(f"hostile client {what}: {got} from Apache in {seconds:.3f}s, {line.split('] ', 4)[-1][:120]}")


def _served_meanwhile(srv, path: str, count: int, limit: float) -> list[float]:
    """count requests one after the other; how long each took (each must be under limit)."""
    took = []
    for _ in range(count):
        started = time.monotonic()
        r = srv.get(path, timeout=limit + 30)
        took.append(time.monotonic() - started)
        assert r.status_code == 200, (r.status_code, r.text[:200])
    return took


def test_slow_loris_headers_hold_no_request_slot(apache):
    """Ten clients send their request heads a byte every 0.2 s: Apache's handler (and so the
    group's one slot) is not reached before a head is complete."""
    srv = apache(_site)
    head = b"GET /slow/hello HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 20 + b"\r\nConnection: close\r\n\r\n"
    heads_sent = threading.Event()
    answers: list[bytes] = []

    def loris() -> None:
        with socket.create_connection((HOST, srv.port), timeout=60) as conn:
            for i in range(len(head) - 1):
                conn.sendall(head[i:i + 1])
                time.sleep(0.2)
            heads_sent.wait(60)
            conn.sendall(head[-1:])
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            answers.append(data)

    clients = [threading.Thread(target=loris) for _ in range(10)]
    for t in clients:
        t.start()
    took = _served_meanwhile(srv, "/slow/hello", 20, 2.0)
    heads_sent.set()
    for t in clients:
        t.join(90)
    assert max(took) < 2.0, took
    assert len(answers) == 10 and all(a.startswith(b"HTTP/1.1 200") for a in answers), [a[:40] for a in answers]
    note(f"hostile client slow-loris heads (10 at a byte per 0.2 s): 20 requests to the one-slot group "
         f"beside them, slowest {max(took) * 1000:.0f} ms")


def _slow_body(port: int, length: int, first: bytes, release: threading.Event, chunked: bool,
               answers: list[bytes]) -> None:
    """Sends a request head and the first bytes of its body, waits for release, then the rest."""
    with socket.create_connection((HOST, port), timeout=120) as conn:
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % length
        conn.sendall(b"POST /slow/upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + framing + b"\r\n\r\n")
        rest = b"b" * (length - len(first))
        conn.sendall(b"%x\r\n%s\r\n" % (len(first), first) if chunked else first)
        release.wait(120)
        data = b""
        try:
            conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest) if chunked else rest)
        except OSError:
            pass   # cut off meanwhile: its answer, if any, is still to be read
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except OSError:
            pass
        answers.append(data)


REQTIMEOUT = "RequestReadTimeout header=20-40,MinRate=500 body=2,MinRate=10000000"
AHEAD = MIB   # what Apache reads of a longer or chunked body before it asks a worker (body-read-ahead)

SLOW_BODIES = {
    # name: (body length, bytes sent before the stall, chunked, mod_reqtimeout, body-read-ahead)
    "8KiB-content-length": (8 * 1024, 4096, False, False, AHEAD),
    "1MiB-content-length": (MIB, 4096, False, False, AHEAD),
    "1MiB-chunked": (MIB, 4096, True, False, AHEAD),
    "8MiB-content-length-stalled-past-the-read-ahead": (8 * MIB, 2 * MIB, False, False, AHEAD),
    "8MiB-content-length-stalled-past-the-read-ahead-reqtimeout": (8 * MIB, 2 * MIB, False, True, AHEAD),
    "8MiB-content-length-stalled-within-body-read-ahead=4M": (8 * MIB, 2 * MIB, False, False, 4 * MIB),
    "1MiB-chunked-with-body-read-ahead=0": (MIB, 4096, True, False, 0),
}


@pytest.mark.parametrize("name", list(SLOW_BODIES))
def test_a_slow_body_and_the_groups_only_request_slot(apache, name):
    """A client that sends part of its body and stalls, against a group with one slot. A body of
    at most 16 KiB with a Content-Length is read whole before the worker is asked, and the first
    `body-read-ahead` bytes (1M by default) of a longer or chunked one, so a client that stalls
    within them holds no slot. Past that the body streams to the worker as it arrives, and the
    slot is held while the client takes its time: without mod_reqtimeout until it goes on (here,
    until the test releases it), with it until its body timeout (`body=2`) cuts the client off."""
    length, first, chunked, reqtimeout, ahead = SLOW_BODIES[name]
    extra = [REQTIMEOUT] if reqtimeout else []
    options = () if ahead == AHEAD else (f"body-read-ahead={ahead // 1024}K",)
    srv = apache(lambda s: _site(s, *extra, slow_options=options),
                 extra_modules=("reqtimeout",) if reqtimeout else ())
    release = threading.Event()
    answers: list[bytes] = []
    slow = threading.Thread(target=_slow_body, args=(srv.port, length, b"a" * first, release, chunked, answers))
    slow.start()
    try:
        time.sleep(0.5)   # the slow request's head and first bytes are in (nothing to poll for)
        started = time.monotonic()
        try:
            r = srv.get("/slow/hello", timeout=5)
            outcome = f"{r.status_code} in {time.monotonic() - started:.2f}s"
            served = r.status_code == 200
        except Exception as e:   # noqa: BLE001 - the outcome is the finding
            outcome = f"no answer within 5 s ({type(e).__name__})"
            served = False
    finally:
        release.set()
        slow.join(120)
    assert answers, "the slow client got no answer"
    if reqtimeout:
        # cut off at its body timeout: 408 before the response began (or the connection closed)
        assert answers[0] == b"" or answers[0].startswith(b"HTTP/1.1 408"), answers[0][:100]
    else:
        assert answers[0].startswith(b"HTTP/1.1 200"), answers[0][:100]
    note(f"hostile client slow body {name} (stalled after {first} bytes): a request beside it to the "
         f"one-slot group: {outcome}; the slow client got {answers[0][:12]!r}")
    if first >= ahead and not reqtimeout:
        # the documented limit (docs/security.md, 'A hostile client'): past body-read-ahead the
        # body streams to the worker, whose one slot it holds while the client stalls
        assert not served, f"served beside a body stalled past body-read-ahead={ahead}: {outcome}"
    else:
        assert served, outcome


def _h2_available() -> str:
    if not os.path.exists(os.path.join(APACHE_MODULES, "mod_http2.so")):
        return f"mod_http2 is not installed ({APACHE_MODULES}/mod_http2.so)"
    try:
        import h2  # noqa: F401
    except ImportError:
        return "Python's h2 package is not installed (scripts/install-dependencies.sh installs it)"
    return ""


def test_http2_streams_reset_mid_upload_free_their_slot(apache):
    """Over h2c (prior knowledge, cleartext, loopback), uploads to the one-slot group reset with
    RST_STREAM after 256 KiB of a 8 MiB body: each frees the slot, and the next request, on the
    same HTTP/2 connection and over HTTP/1.1, is answered."""
    missing = _h2_available()
    if missing:
        pytest.skip(missing)
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events

    srv = apache(lambda s: _site(s, "Protocols h2c http/1.1", "H2Direct on"), extra_modules=("http2",))
    children = sorted(srv.apache_children())
    offset = srv.log_offset()
    conn = socket.create_connection((HOST, srv.port), timeout=30)
    h2conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    h2conn.initiate_connection()
    conn.sendall(h2conn.data_to_send())

    def pump_until(predicate) -> list:
        events = []
        deadline = time.monotonic() + 30
        while not predicate(events):
            assert time.monotonic() < deadline, f"no answer over HTTP/2: {events}"
            data = conn.recv(65536)
            assert data, "Apache closed the HTTP/2 connection"
            events += h2conn.receive_data(data)
            conn.sendall(h2conn.data_to_send())
        return events

    def get(path: str) -> tuple[int, bytes]:
        stream = h2conn.get_next_available_stream_id()
        h2conn.send_headers(stream, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                     (":authority", f"{HOST}:{srv.port}")], end_stream=True)
        conn.sendall(h2conn.data_to_send())
        events = pump_until(lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream
                                           for e in ev))
        status = next(int(dict(e.headers)[b":status"]) for e in events
                      if isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream)
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == stream)
        return status, body

    assert get("/slow/hello") == (200, b"Hello world!\n")
    took = []
    for _ in range(10):
        stream = h2conn.get_next_available_stream_id()
        h2conn.send_headers(stream, [(":method", "POST"), (":path", "/slow/upload"), (":scheme", "http"),
                                     (":authority", f"{HOST}:{srv.port}"), ("content-length", str(8 * MIB))])
        sent = 0
        while sent < 256 * 1024:
            window = min(h2conn.local_flow_control_window(stream), h2conn.max_outbound_frame_size, 256 * 1024 - sent)
            if window <= 0:
                pump_until(lambda ev: any(isinstance(e, h2.events.WindowUpdated) for e in ev))
                continue
            h2conn.send_data(stream, b"u" * window)
            sent += window
            conn.sendall(h2conn.data_to_send())
        h2conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
        conn.sendall(h2conn.data_to_send())
        started = time.monotonic()
        assert get("/slow/hello") == (200, b"Hello world!\n")
        r = srv.get("/slow/hello", timeout=10)
        assert r.status_code == 200
        took.append(time.monotonic() - started)
    conn.close()
    log = srv.error_log_text(offset)
    assert not CRASH_LINES.search(log), log[-2000:]
    assert sorted(srv.apache_children()) == children
    assert max(took) < 5, took
    note(f"hostile client HTTP/2 RST_STREAM after 256 KiB of an 8 MiB upload, 10 times: the one-slot group "
         f"answered the next request over h2 and HTTP/1.1 within {max(took) * 1000:.0f} ms at most")
