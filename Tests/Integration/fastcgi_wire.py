"""FastCGI records as the stand-in group programs write and read them (fake_fastcgi_program.py,
hostile_worker.py): the harness installs this file beside each, since Apache runs them from a
copy in the test server's bin/."""

from __future__ import annotations

import socket
import struct

FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR, FCGI_END_REQUEST = 4, 5, 6, 7, 3
# The module's own records from a worker: a request waits for a slot, then runs.
REQUEST_WAITING, REQUEST_STARTED = 0x57, 0x53


def record(kind: int, content: bytes = b"", request_id: int = 1, padding: int = 0, version: int = 1,
           length: int | None = None) -> bytes:
    """A record; `length` overrides the content length its header states."""
    stated = len(content) if length is None else length
    return struct.pack(">BBHHBB", version, kind, request_id, stated, padding, 0) + content + b"\0" * padding


def end_request(app_status: int = 0, protocol_status: int = 0) -> bytes:
    return record(FCGI_END_REQUEST, struct.pack(">IB3x", app_status, protocol_status))


def read_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_record(conn: socket.socket) -> tuple[int, bytes] | None:
    """One record: its type and content (padding dropped); None at EOF."""
    header = read_exact(conn, 8)
    if header is None:
        return None
    _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", header)
    content = read_exact(conn, length + padding) if length + padding else b""
    return None if content is None else (kind, content[:length])


def name_value_pairs(data: bytes) -> dict[str, str]:
    """FastCGI PARAMS content: lengths of 1 byte, or 4 with the high bit set."""
    pairs, at = {}, 0
    while at < len(data):
        lengths = []
        for _ in range(2):
            if data[at] & 0x80:
                lengths.append(struct.unpack(">I", data[at:at + 4])[0] & 0x7FFFFFFF)
                at += 4
            else:
                lengths.append(data[at])
                at += 1
        name, value = data[at:at + lengths[0]], data[at + lengths[0]:at + lengths[0] + lengths[1]]
        at += lengths[0] + lengths[1]
        pairs[name.decode("latin-1")] = value.decode("latin-1")
    return pairs


def read_params(conn: socket.socket) -> dict[str, str] | None:
    """Reads BEGIN_REQUEST through the empty PARAMS; the parameters, None at EOF."""
    params = b""
    while (got := read_record(conn)) is not None:
        kind, content = got
        if kind == FCGI_PARAMS:
            if not content:
                return name_value_pairs(params)
            params += content
    return None
