"""Misbehaving clients: downloads and uploads abandoned halfway, a body trickled byte by
byte. None may hold a worker's request slot for good or stop the group serving others."""

from __future__ import annotations

import socket
import threading
import time

from sg_harness import MIB

THREADS = 2                 # two slots: a leaked slot or two show at once
ABANDONED = 3 * THREADS     # more abandoned requests than the worker has slots


def _site(s) -> str:
    return "\n".join([
        s.daemon("site", "processes=1", f"threads={THREADS}"),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def _abandon(port: int, head: bytes, send: bytes = b"", read: int = 0) -> None:
    """Sends a request head (and some body), reads up to `read` bytes, then goes away."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + send)
        got = 0
        while got < read:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += len(chunk)


def _all_served(srv, count: int) -> None:
    """count requests in a row, each answered within 10 s: a worker with its slots leaked
    would leave them waiting in the backlog until socket-timeout."""
    for _ in range(count):
        r = srv.get("/hello", timeout=10)
        assert r.status_code == 200, (r.status_code, r.text[:200])


def test_abandoned_downloads_and_uploads_leave_no_slot_held(apache):
    srv = apache(_site)
    (worker,) = srv.wait_workers("site", 1)
    for _ in range(ABANDONED):
        # far more than the socket buffers hold: the worker is mid-response when the client goes
        _abandon(srv.port, b"GET /bytes?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % (512 * MIB), read=64 * 1024)
    _all_served(srv, 20)
    for _ in range(ABANDONED):
        _abandon(srv.port, b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (64 * MIB),
                 send=b"x" * MIB)
    _all_served(srv, 20)
    assert srv.wait_workers("site", 1) == [worker], "the worker was replaced"


def test_a_trickled_body_gets_its_answer_while_others_are_served(apache):
    srv = apache(_site)
    body = b"0123456789abcdefghij"
    last_byte_may_go = threading.Event()
    answer: list[bytes] = []

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as conn:
            conn.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            for i in range(len(body) - 1):
                conn.sendall(body[i:i + 1])
                time.sleep(0.02)
            # the request stays unfinished until the others were served (a body this short
            # is read whole by Apache before the worker is asked: no slot is held meanwhile)
            last_byte_may_go.wait(timeout=60)
            conn.sendall(body[-1:])
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            answer.append(data)

    slow = threading.Thread(target=trickle)
    slow.start()
    try:
        _all_served(srv, 20)
    finally:
        last_byte_may_go.set()
        slow.join(timeout=60)
    assert answer, "the trickled request got no answer"
    head, _, echoed = answer[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    if b"transfer-encoding: chunked" in head.lower():
        echoed = b"".join(_dechunk(echoed))
    assert echoed == body


def _dechunk(data: bytes):
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return
        yield rest[:n]
        data = rest[n + 2:]


def test_a_malformed_chunked_body_is_400_and_the_group_carries_on(apache):
    srv = apache(_site)
    offset = srv.log_offset()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as conn:
        conn.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\nzz-not-a-size\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    srv.wait_for_log("SG0509: group site: reading the request body from the client failed after 5 "
                     "bytes (httpd refused the body and answers the client)", since=offset)
    _all_served(srv, 5)
