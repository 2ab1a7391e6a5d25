#!/usr/bin/python3
"""A group program that speaks FastCGI to Apache as a malicious worker would (test_hostile_worker.py).

Apache starts it as a group's program; it serves the group's listening socket, fd 3, itself,
and skips what a real worker checks (the peer's uid, the token): a hostile worker would too.
Each connection's request picks its answer by the last segment of its path (`/hostile/NAME`):
CASES below. Most read the whole request first, then write their bytes and close; the streams
(floods, never-ending header blocks) write until Apache closes the connection or their end.
`ok` is a well-formed answer, by which the tests see that Apache still serves.

Nothing is written to stderr (the error log): the tests measure how that log grows."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from fastcgi_wire import (FCGI_END_REQUEST, FCGI_STDERR, FCGI_STDOUT, REQUEST_STARTED, REQUEST_WAITING,
                          end_request, read_params, read_record, record)

MIB = 1024 * 1024
GIB = 1024 * MIB


OK_HEAD = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
OK = record(FCGI_STDOUT, OK_HEAD + b"ok\n") + record(FCGI_STDOUT) + end_request()


def answer(head: bytes, body: bytes = b"ok\n") -> bytes:
    """A whole answer with the header block `head` (its blank line included), in records of
    at most 65,535 bytes."""
    data = head + body
    return b"".join(record(FCGI_STDOUT, data[i:i + 65535]) for i in range(0, len(data), 65535)) \
        + record(FCGI_STDOUT) + end_request()


def every_type_with_wrong_lengths() -> bytes:
    """Records of every type the module does not expect from a worker (and its own two), each
    empty, short, odd-sized and of the largest length, with the largest padding."""
    out = b""
    for kind in (0, 1, 2, 4, 5, 8, 9, 10, 11, 12, 99, 255, REQUEST_WAITING, REQUEST_STARTED):
        for size in (0, 1, 7, 65535):
            out += record(kind, bytes(range(256)) * (size // 256) + b"\xff" * (size % 256), padding=255)
    return out + record(FCGI_STDOUT, OK_HEAD, padding=255) + record(FCGI_STDOUT, b"ok\n", padding=1) \
        + record(FCGI_STDOUT, padding=255) + end_request()


def split_in_one_byte_records(block: bytes) -> bytes:
    return b"".join(record(FCGI_STDOUT, block[i:i + 1]) for i in range(len(block)))


TEN_THOUSAND_BYTES_OF_HEADERS = b"Content-Type: text/plain\r\n" + b"".join(
    b"X-Split-%02d: %s\r\n" % (i, b"v" * 486) for i in range(20)) + b"\r\n"
assert len(TEN_THOUSAND_BYTES_OF_HEADERS) >= 10_000


# Whole answers, written after the request was read, then the connection is closed.
CASES: dict[str, bytes] = {
    "ok": OK,
    # records: wrong lengths, padding, request ids, versions, types
    "content-longer-than-sent": record(FCGI_STDOUT, b"Content-Type: text/plain\r\n", length=1000),
    "content-longer-than-sent-in-body": record(FCGI_STDOUT, OK_HEAD + b"first part\n")
    + record(FCGI_STDOUT, b"x" * 100, length=65535),
    "stderr-content-longer-than-sent": record(FCGI_STDERR, b"a line\n", length=1000),
    "end-request-on-request-id-0": record(FCGI_STDOUT, b"Content-Type: text/plain\r\n")
    + record(FCGI_END_REQUEST, struct.pack(">IB3x", 0, 0), request_id=0),
    "padding-cut-short": record(FCGI_STDOUT, OK_HEAD + b"ok\n", padding=200)[:-100],
    "header-cut-short": record(FCGI_STDOUT, OK_HEAD)[:5],
    "every-type-with-wrong-lengths": every_type_with_wrong_lengths(),
    "end-request-empty": record(FCGI_STDOUT, OK_HEAD + b"ok\n") + record(FCGI_END_REQUEST),
    "end-request-short": record(FCGI_STDOUT, OK_HEAD + b"ok\n") + record(FCGI_END_REQUEST, b"\0\0\0"),
    "end-request-longest": record(FCGI_STDOUT, OK_HEAD + b"ok\n") + record(FCGI_END_REQUEST, b"\xff" * 65535),
    "end-request-unknown-protocol-status": record(FCGI_STDOUT, OK_HEAD + b"ok\n") + end_request(7, 99),
    "request-id-2": record(FCGI_STDOUT, OK_HEAD + b"ok\n", request_id=2) + end_request(),
    "request-id-65535-in-body": record(FCGI_STDOUT, OK_HEAD + b"ok\n")
    + record(FCGI_STDOUT, b"smuggled\n", request_id=65535) + end_request(),
    "stdout-on-request-id-0": record(FCGI_STDOUT, OK_HEAD + b"ok\n", request_id=0) + end_request(),
    "version-0": record(FCGI_STDOUT, OK_HEAD + b"ok\n", version=0) + end_request(),
    "version-255-in-body": record(FCGI_STDOUT, OK_HEAD + b"ok\n") + record(FCGI_STDOUT, b"x", version=255)
    + end_request(),
    "unknown-types": b"".join(record(kind, b"?" * kind) for kind in range(11, 256)
                              if kind not in (REQUEST_WAITING, REQUEST_STARTED)) + OK,
    "unknown-types-flood": record(200) * 1_000_000 + OK,
    "waiting-flood": (record(REQUEST_WAITING, struct.pack(">I", 4242)) + record(REQUEST_STARTED)) * 100_000 + OK,
    # header blocks
    "header-64k-one-field": answer(b"X-Big: " + b"v" * 65536 + b"\r\n\r\n"),
    # within header-buffer-size, longer than a line httpd's scanner takes, headers after it
    # (refused with its reason, not httpd's "End of script output before headers" alone)
    "header-10k-line-then-status": answer(b"X-Long: " + b"v" * 10000 + b"\r\nStatus: 302\r\nLocation: /x\r\n\r\n"),
    "nul-in-name": answer(b"X-A\0b: 1\r\n\r\n"),
    "nul-in-value": answer(b"X-A: 1\0Set-Cookie: x\r\n\r\n"),
    "cr-in-name": answer(b"X-A\rB: 1\r\n\r\n"),
    "cr-in-value": answer(b"X-A: 1\rSet-Cookie: x=1\r\n\r\n"),
    "lf-in-name": answer(b"X-A\nB: 1\r\n\r\n"),
    "lf-in-value": answer(b"X-A: 1\nnot a header\r\n\r\n"),
    "obs-fold-space": answer(b"X-A: 1\r\n folded\r\n\r\n"),
    "obs-fold-tab": answer(b"X-A: 1\r\n\tfolded\r\n\r\n"),
    "status-garbage": answer(b"Status: garbage\r\n\r\n"),
    "status-empty": answer(b"Status:\r\n\r\n"),
    "status-negative": answer(b"Status: -200 OK\r\n\r\n"),
    "status-1000": answer(b"Status: 1000 Too Much\r\n\r\n"),
    "status-99": answer(b"Status: 99 Too Little\r\n\r\n"),
    "status-100": answer(b"Status: 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n"),
    "status-103": answer(b"Status: 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"),
    "status-101": answer(b"Status: 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                         b"\x81\x05hello"),
    "location-cr": answer(b"Status: 302 Found\r\nLocation: http://example.com/\rSet-Cookie: x=1\r\n\r\n"),
    "location-crlf-crlf": answer(b"Status: 302 Found\r\nLocation: http://example.com/\r\n\r\n"
                                 b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n"),
    "location-lf-then-header": answer(b"Status: 302 Found\r\nLocation: http://example.com/\n"
                                      b"X-After-Lf: 1\r\n\r\n"),
    "split-10000-one-byte-records": split_in_one_byte_records(TEN_THOUSAND_BYTES_OF_HEADERS)
    + record(FCGI_STDOUT, b"ok\n") + record(FCGI_STDOUT) + end_request(),
    # END_REQUEST where it does not belong, STDOUT after it
    "end-request-first": end_request() + record(FCGI_STDOUT, OK_HEAD + b"ok\n") + end_request(),
    "end-request-mid-headers": record(FCGI_STDOUT, b"Content-Type: text/plain\r\nX-Half: ") + end_request()
    + record(FCGI_STDOUT, b"1\r\n\r\nok\n") + end_request(),
    "end-request-mid-body": record(FCGI_STDOUT, OK_HEAD + b"first half\n") + end_request()
    + record(FCGI_STDOUT, b"second half\n") + end_request(),
    "end-request-inside-a-stdout-record": record(FCGI_STDOUT, OK_HEAD + b"first half\n")
    + struct.pack(">BBHHBB", 1, FCGI_STDOUT, 1, 100, 0, 0) + b"x" * 20 + end_request(),
    "stdout-after-end-request": OK + record(FCGI_STDOUT, b"after the end\n") * 1000,
}


def stream_stderr_flood(conn: socket.socket, one_line: bool) -> None:
    """1 GiB of STDERR, as 100-byte lines or as one line of control characters (each
    escaped to four bytes in the error log), then a good answer."""
    if one_line:
        content = b"\x01" * 65535
    else:
        line = b"warn: a flood of log lines from a hostile worker " + b"." * 49 + b"\n"
        content = line * (65500 // len(line))
    chunk = record(FCGI_STDERR, content) * 16
    sent = 0
    while sent < GIB:
        conn.sendall(chunk)
        sent += len(content) * 16
    conn.sendall(OK)


def stream_endless_headers(conn: socket.socket) -> None:
    """A header block that never ends: header lines until Apache closes."""
    line = record(FCGI_STDOUT, b"".join(b"X-Endless-%04d: more\r\n" % i for i in range(2000)))
    conn.sendall(record(FCGI_STDOUT, b"Content-Type: text/plain\r\n"))
    while True:
        conn.sendall(line)


def stream_slow_header_block(conn: socket.socket) -> None:
    """A header block that never ends, a line every 0.2 s: never silent for socket-timeout."""
    conn.sendall(record(FCGI_STDOUT, b"Content-Type: text/plain\r\n"))
    for i in range(1_000_000):
        conn.sendall(record(FCGI_STDOUT, b"X-Slow-%d: more\r\n" % i))
        time.sleep(0.2)


def stream_waiting_then_silent(conn: socket.socket) -> None:
    """Says the request waits for a request slot, then nothing."""
    conn.sendall(record(REQUEST_WAITING, struct.pack(">I", 4242)))
    wait_for_close(conn)


STREAMS = {
    "stderr-flood-lines": lambda conn: stream_stderr_flood(conn, one_line=False),
    "stderr-flood-one-line": lambda conn: stream_stderr_flood(conn, one_line=True),
    "endless-header-block": stream_endless_headers,
    "slow-endless-header-block": stream_slow_header_block,
    "waiting-then-silent": stream_waiting_then_silent,
}


def read_body(conn: socket.socket, stop_after: int | None = None) -> bool:
    """Reads STDIN through its empty record (or until stop_after body bytes); False at EOF."""
    received = 0
    while (got := read_record(conn)) is not None:
        kind, content = got
        if kind == 5:
            if not content:
                return True
            received += len(content)
            if stop_after is not None and received >= stop_after:
                return True
    return False


def wait_for_close(conn: socket.socket) -> None:
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def serve(conn: socket.socket) -> None:
    with conn:
        try:
            params = read_params(conn)
            if params is None:
                return
            case = params.get("REQUEST_URI", "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            if case == "stops-reading-stdin":
                # takes 64 KiB of the upload, then never reads again nor answers
                read_body(conn, stop_after=64 * 1024)
                time.sleep(3600)
                return
            if not read_body(conn):
                return
            if case in STREAMS:
                STREAMS[case](conn)
            else:
                conn.sendall(CASES.get(case, OK))
            conn.shutdown(socket.SHUT_WR)
            wait_for_close(conn)
        except OSError:
            pass   # Apache closed the connection: the case is over


def main() -> None:
    listener = socket.socket(fileno=3)
    listener.setblocking(True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
