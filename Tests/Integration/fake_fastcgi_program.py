#!/usr/bin/python3
"""A stand-in group program for the connection-reuse tests: serves FastCGI on fd 3 itself.

FAKE_MODE=legacy: like a program built before connection reuse, it answers with appStatus 0,
    then waits 50 ms and closes without reading on. Apache must never send it a second
    request on a connection.
FAKE_MODE=refuse-reuse: acknowledges every connection as kept ("SGKA"), but answers a second
    request on a connection with an unsolicited END_REQUEST/FCGI_OVERLOADED and closes, as a
    worker does when it reclaims an idle connection just as Apache sends on it. Apache must
    send that request again on a new connection.
FAKE_MODE=close-unread: acknowledges every connection as kept, but when a second request
    arrives on a connection it closes without reading it, as a worker does that dies before
    reading a request (the kernel then reports ECONNRESET, not EOF, to Apache). Apache must
    send that request again on a new connection.

FAKE_MODE=headers: answers QUERY_STRING `case=NAME&chunk=N` with the header block HEADER_CASES
    names, sent in STDOUT records of N bytes (default: one record), then `ok` as the body,
    appStatus 0 (the connection is not kept), and closes.
FAKE_MODE=records: answers QUERY_STRING `case=NAME` with the bytes RECORD_CASES names (well
    formed or not), and closes.
FAKE_MODE=timeouts (request-timeout's tests): the answer is chosen by QUERY_STRING:
    stall            reads the request, then sends nothing
    head-then-stall  sends the response headers and a line of body, then nothing
    unread           reads the parameters only (never the body), then sends nothing
    queued           REQUEST_WAITING (pid 4242), 3 s later REQUEST_STARTED, 2 s later 200
    queued-stall     REQUEST_WAITING (pid 4242), at once REQUEST_STARTED, then nothing
    Each that sends nothing more logs "stand-in: Apache closed QUERY" to stderr (the error
    log) when Apache closes the connection.

Each answer in the other modes carries `X-Conn-Request: N`, the request's number on its
connection, and `X-Body-Sha256`, the SHA-256 of the request body it received."""

import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs

from fastcgi_wire import end_request, read_params, read_record, record

KEPT = 0x53474B41
MODE = os.environ.get("FAKE_MODE", "legacy")


# FAKE_MODE=headers: response header blocks, good and hostile, by name.
HEADER_CASES = {
    "good": b"Status: 201 Created\r\nContent-Type: text/plain\r\nX-Tab: a\tb\r\n"
            b"X-Token-Chars: !#$%&'*+-.^_`|~\r\n\r\n",
    "lf-only": b"Content-Type: text/plain\nX-Lf: yes\n\n",
    "long": b"".join(b"X-Long-%d: %s\r\n" % (i, b"v" * 4000) for i in range(6)) + b"\r\n",
    "bare-cr": b"X-A: 1\rX-Injected: 2\r\n\r\n",
    "bare-cr-line-start": b"X-A: 1\r\n\rX-Injected: 2\r\n\r\n",
    "nul": b"X-A: 1\x00\r\n\r\n",
    "control": b"X-A: \x01\r\n\r\n",
    "delete": b"X-A: \x7f\r\n\r\n",
    "no-colon": b"X-A\r\n\r\n",
    "empty-name": b": v\r\n\r\n",
    "bad-name": b"X A: v\r\n\r\n",
    "line-too-long": b"X-Line: " + b"v" * 9000 + b"\r\n\r\n",
    "too-big": b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 4000) for i in range(10)) + b"\r\n",
}


# FAKE_MODE=records: whole answers, good and malformed, by name.
OK_HEAD = b"Content-Type: text/plain\r\n\r\nok\n"
RECORD_CASES = {
    "version-2": record(6, OK_HEAD, version=2) + record(6) + end_request(0, 0),
    "other-request-id": record(6, OK_HEAD, request_id=7) + record(6) + end_request(0, 0),
    "unknown-and-management-records": record(42, b"whatever") + record(10, b"\x03\x01ABCx", request_id=0)
    + record(6, OK_HEAD, padding=7) + record(6) + end_request(0, 0),
    "stderr-line": record(7, b"a line from the worker\n") + record(6, OK_HEAD) + record(6) + end_request(0, 0),
    "end-without-headers": end_request(0, 0),
    "overloaded": end_request(0, 2),
    "cut-in-a-record": struct.pack(">BBHHBB", 1, 6, 1, 100, 0, 0) + b"Content-Ty",
    "cut-in-a-header": b"\x01\x06\x00",
}


def read_body(conn: socket.socket) -> bytes | None:
    """Reads STDIN through its empty record; the body, None at EOF."""
    body = b""
    while (got := read_record(conn)) is not None:
        kind, content = got
        if kind == 5:
            if not content:
                return body
            body += content
    return None


def read_request(conn: socket.socket) -> tuple[dict[str, str], bytes] | None:
    """Reads BEGIN_REQUEST through the empty STDIN; its parameters and body, None at EOF."""
    params = read_params(conn)
    body = None if params is None else read_body(conn)
    return None if params is None or body is None else (params, body)


def answer_timeout_case(conn: socket.socket) -> None:
    """FAKE_MODE=timeouts: one request, answered (or not) as its QUERY_STRING says."""
    params = read_params(conn)
    query = (params or {}).get("QUERY_STRING", "")
    if params is None or query == "unread":
        time.sleep(3600)  # the body stays unread: Apache cannot send it
        return
    read_body(conn)
    head = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    if query == "head-then-stall":
        conn.sendall(record(6, head + b"the first line\n"))
    elif query in ("queued", "queued-stall"):
        conn.sendall(record(0x57, struct.pack(">I", 4242)))
        time.sleep(3 if query == "queued" else 0)
        conn.sendall(record(0x53))
        if query == "queued":
            time.sleep(2)
            conn.sendall(record(6, head + b"ok\n") + record(6) + end_request(0, 0))
            return
    while conn.recv(65536):
        pass
    print(f"stand-in: Apache closed {query}", file=sys.stderr, flush=True)


def answer_header_case(conn: socket.socket, query: str) -> None:
    args = parse_qs(query)
    block = HEADER_CASES[args["case"][0]] + b"ok\n"
    chunk = int(args.get("chunk", [len(block)])[0])
    records = b"".join(record(6, block[i:i + chunk]) for i in range(0, len(block), chunk))
    conn.sendall(records + record(6) + end_request(0, 0))


def serve(conn: socket.socket) -> None:
    with conn:
        if MODE == "timeouts":
            answer_timeout_case(conn)
            return
        served = 0
        while (request := read_request(conn)) is not None:
            params, body = request
            served += 1
            if MODE == "headers":
                answer_header_case(conn, params.get("QUERY_STRING", ""))
                return
            if MODE == "records":
                conn.sendall(RECORD_CASES[parse_qs(params.get("QUERY_STRING", ""))["case"][0]])
                return
            if MODE == "refuse-reuse" and served > 1:
                conn.sendall(end_request(0, 2))
                return
            head = (f"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Conn-Request: {served}\r\n"
                    f"X-Body-Sha256: {hashlib.sha256(body).hexdigest()}\r\n\r\nok\n")
            conn.sendall(record(6, head.encode()) + record(6) + end_request(KEPT if MODE != "legacy" else 0, 0))
            if MODE == "legacy":
                time.sleep(0.05)
                return
            if MODE == "close-unread":
                select.select([conn], [], [])
                return


def main() -> None:
    listener = socket.socket(fileno=3)
    listener.setblocking(True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
