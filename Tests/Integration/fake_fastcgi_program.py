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

Each answer carries `X-Conn-Request: N`, the request's number on its connection."""

import os
import select
import socket
import struct
import threading
import time

KEPT = 0x53474B41
MODE = os.environ.get("FAKE_MODE", "legacy")


def record(kind: int, content: bytes = b"") -> bytes:
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), 0, 0) + content


def end_request(app_status: int, protocol_status: int) -> bytes:
    return record(3, struct.pack(">IB3x", app_status, protocol_status))


def read_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_request(conn: socket.socket) -> bool:
    """Reads BEGIN_REQUEST through the empty STDIN; False at EOF."""
    while True:
        header = read_exact(conn, 8)
        if header is None:
            return False
        _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", header)
        content = read_exact(conn, length + padding) if length + padding else b""
        if content is None:
            return False
        if kind == 5 and length == 0:
            return True


def serve(conn: socket.socket) -> None:
    with conn:
        served = 0
        while read_request(conn):
            served += 1
            if MODE == "refuse-reuse" and served > 1:
                conn.sendall(end_request(0, 2))
                return
            head = f"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Conn-Request: {served}\r\n\r\nok\n"
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
