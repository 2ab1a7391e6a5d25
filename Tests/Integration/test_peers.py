"""Who may talk to a group's workers: only Apache's children (their uid, checked with
SO_PEERCRED) presenting the group's token. Anything else gets no answer and a log line."""

from __future__ import annotations

import os
import struct
import subprocess

# A FastCGI client that sends one GET /hello without the group's token and prints what came
# back; run as root or as Apache's user by the tests below.
CLIENT = r'''
import socket, struct, sys

def record(kind, content=b""):
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), 0, 0) + content

def pair(name, value):
    return bytes([len(name), len(value)]) + name + value

params = b"".join(pair(n, v) for n, v in [(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/hello"),
                                            (b"SCRIPT_NAME", b""), (b"PATH_INFO", b"/hello")])
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.settimeout(20)
conn.connect(sys.argv[1])
answer = b""
# A refused peer's connection is closed at once: sending may already find it gone.
try:
    conn.sendall(record(1, struct.pack(">HB5x", 1, 0)) + record(4, params) + record(4) + record(5))
    while chunk := conn.recv(65536):
        answer += chunk
except (BrokenPipeError, ConnectionResetError):
    pass
sys.stdout.write(answer.hex())
'''


def _site(s) -> str:
    return "\n".join([
        s.daemon("site", "processes=1", "threads=4"),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def _ask_directly(sock: str, *as_user: str) -> bytes:
    # Debian's python3: the one running the tests may live where www-data cannot read
    proc = subprocess.run([*as_user, "/usr/bin/python3", "-c", CLIENT, sock], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return bytes.fromhex(proc.stdout)


def test_a_process_of_another_user_is_refused(apache):
    srv = apache(_site)
    (worker,) = srv.wait_workers("site", 1)
    offset = srv.log_offset()
    # root may open the 0600 socket of www-data, but it is not Apache's User
    assert os.geteuid() == 0
    answer = _ask_directly(srv.group_socket("site"))
    assert answer == b"", answer[:200]
    srv.wait_for_log("SG1111: refused a connection from pid", since=offset)
    assert srv.get("/hello").status_code == 200
    assert srv.wait_workers("site", 1) == [worker]


def test_apaches_user_without_the_groups_token_is_refused(apache):
    srv = apache(_site)
    offset = srv.log_offset()
    answer = _ask_directly(srv.group_socket("site"), "runuser", "-u", "www-data", "--")
    assert not any(kind == 6 for kind in _record_types(answer)), answer[:200]  # no STDOUT
    srv.wait_for_log("SG1115: refused a request without the group's token", since=offset)
    assert srv.get("/hello").status_code == 200


def _record_types(data: bytes) -> list[int]:
    kinds = []
    while len(data) >= 8:
        _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", data[:8])
        kinds.append(kind)
        data = data[8 + length + padding:]
    return kinds
