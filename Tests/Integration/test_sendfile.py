"""X-Sendfile: the worker names a file, Apache sends it.

The fixture's `/sendfile?path=P` answers 200 with `X-Sendfile: P` and an empty body (`type=T`
adds a Content-Type, `body=N` N bytes of body that must be discarded).  Where `SwiftSendfile On`
applies and P lies within a `SwiftSendfilePath` directory, Apache sends the file itself:
byte-exact for 1 GiB, with Range (206) and conditional requests (304), mod_mime's Content-Type
unless the application set one, while the worker (one process, one request slot) keeps
answering other requests at full rate.  Paths outside, with `..`, relative, or leading out
through a symbolic link get 500 and an SG0531 line naming them; a missing file 404 and SG0532;
with `SwiftSendfile Off` the header is dropped (SG0533) and never reaches the client.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import threading
import time

from sg_harness import HOST, MIB, note, run_load

GIB = 1024 * MIB
SMALL = 100_000


def _make_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    return path


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def _write_big_file(path: str, size: int) -> str:
    """size bytes, each MiB a random block stamped with its index (a misplaced MiB shows);
    written a MiB at a time, never held whole; returns the SHA-256."""
    block = bytearray(os.urandom(MIB))
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // MIB):
            block[:8] = i.to_bytes(8, "big")
            f.write(block)
            sha.update(block)
    os.chmod(path, 0o644)
    return sha.hexdigest()


def _sendfile_server(apache, group_options: tuple[str, ...] = ("processes=1", "threads=10"),
                     extra: str = ""):
    """The fixture at /, sendfile On under /on with dir `allowed` (and `also` from the server
    level, so the two add up there), Off elsewhere; mod_mime for the types."""
    def body(s) -> str:
        s.files = _make_dir(os.path.join(s.root, "files"))
        s.allowed = _make_dir(os.path.join(s.files, "allowed"))
        s.also = _make_dir(os.path.join(s.files, "also"))
        s.outside = _make_dir(os.path.join(s.files, "outside"))
        return "\n".join([
            "TypesConfig /etc/mime.types",
            s.daemon("sf", *group_options),
            "SwiftProcessGroup sf",
            f"SwiftScriptAlias / {s.bin}",
            f"SwiftSendfilePath {s.also}",
            "<Location /on>",
            "    SwiftSendfile On",
            f"    SwiftSendfilePath {s.allowed}/",
            "</Location>",
            extra,
        ])
    srv = apache(body, extra_modules=("mime",))
    (worker,) = srv.wait_workers("sf", 1)
    return srv, worker


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Download:
    """A GET read in 1 MiB pieces and hashed as it arrives; `pace` seconds between pieces
    until `slow` is cleared (a slow client), then as fast as it comes."""

    def __init__(self, port: int, path: str, pace: float = 0.0):
        self.port, self.path, self.pace = port, path, pace
        self.slow = threading.Event()
        if pace:
            self.slow.set()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.received = 0
        self.sha = hashlib.sha256()
        self.seconds = 0.0
        self.error: BaseException | None = None
        self.started = threading.Event()

    def run(self) -> "_Download":
        began = time.monotonic()
        try:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            conn.request("GET", self.path, headers={"Connection": "close"})
            resp = conn.getresponse()
            self.status = resp.status
            self.headers = {k.lower(): v for k, v in resp.getheaders()}
            self.started.set()
            while chunk := resp.read(MIB):
                self.sha.update(chunk)
                self.received += len(chunk)
                if self.slow.is_set():
                    time.sleep(self.pace)
            conn.close()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.started.set()
            self.seconds = time.monotonic() - began
        return self


def _get(srv, path: str, method: str = "GET", headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=60)
    conn.request(method, path, headers={"Connection": "close", **(headers or {})})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def test_1gib_file_sent_byte_exact_while_the_worker_serves_on(apache):
    srv, worker = _sendfile_server(apache, group_options=("processes=1", "threads=1"))
    path = os.path.join(srv.allowed, "big.bin")
    digest = _write_big_file(path, GIB)

    # a fast download: byte-exact, timed, with the worker's CPU time over it
    cpu_before = _cpu_seconds(worker)
    fast = _Download(srv.port, f"/on/sendfile?path={path}").run()
    worker_cpu = _cpu_seconds(worker) - cpu_before
    assert fast.error is None, fast.error
    assert fast.status == 200, fast.headers
    assert fast.headers.get("content-length") == str(GIB)
    assert "x-sendfile" not in fast.headers
    assert fast.headers.get("x-gateway-pid") == str(worker)
    assert fast.received == GIB and fast.sha.hexdigest() == digest, "the file arrived altered"
    note(f"X-Sendfile 1 GiB: {fast.seconds:.2f}s ({GIB / MIB / fast.seconds:.0f} MiB/s), "
         f"worker CPU meanwhile {worker_cpu * 1000:.0f} ms")
    assert worker_cpu < 1.0, f"the worker used {worker_cpu:.2f}s of CPU while Apache sent the file"

    # a slow download holds no request slot: the one slot of the one worker serves /hello
    slow = _Download(srv.port, f"/on/sendfile?path={path}", pace=0.05)
    reader = threading.Thread(target=slow.run, name="slow-download", daemon=True)
    reader.start()
    assert slow.started.wait(30) and slow.status == 200, (slow.status, slow.error)
    latencies: list[float] = []

    def observe(_client: int, sent: float, _response) -> None:
        latencies.append(time.monotonic() - sent)

    load = run_load(srv.port, "/hello", total=300, concurrency=2, deadline=60, observe=observe)
    in_flight = reader.is_alive() and slow.received < GIB
    slow.slow.clear()
    reader.join(120)
    note(f"X-Sendfile: /hello on the single-slot worker during a slow 1 GiB download: "
         f"{load.summary()}, slowest {max(latencies) * 1000:.0f} ms")
    assert in_flight, "the slow download ended before the load did: it proves nothing"
    assert not load.failures and load.statuses == {200: 300}, load.summary()
    assert set(load.pids) == {worker}
    assert max(latencies) < 2.0, f"a /hello took {max(latencies):.1f}s beside the download"
    assert slow.error is None, slow.error
    assert slow.received == GIB and slow.sha.hexdigest() == digest


def test_ranges_conditions_types_and_discarded_body(apache):
    srv, worker = _sendfile_server(apache)
    data = os.urandom(SMALL)
    path = os.path.join(srv.allowed, "page.txt")
    _write_file(path, data)
    page = f"/on/sendfile?path={path}&body=5000"

    status, headers, body = _get(srv, page)
    assert status == 200 and body == data, (status, len(body))
    assert headers["content-type"].startswith("text/plain"), headers
    assert headers["content-length"] == str(SMALL)
    assert headers.get("accept-ranges") == "bytes"
    assert "x-sendfile" not in headers
    etag, modified = headers["etag"], headers["last-modified"]

    status, headers, body = _get(srv, page, headers={"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000], (status, headers)
    assert headers["content-range"] == f"bytes 1000-1999/{SMALL}"

    status, headers, body = _get(srv, page, headers={"Range": "bytes=10-19,-5"})
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
    assert data[10:20] in body and data[-5:] in body

    status, _, body = _get(srv, page, headers={"If-Modified-Since": modified})
    assert status == 304 and body == b""
    status, _, body = _get(srv, page, headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    status, _, body = _get(srv, page, headers={"If-Match": '"other"'})
    assert status == 412

    status, headers, body = _get(srv, page, method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(SMALL)

    # the application's Content-Type wins over mod_mime's
    status, headers, body = _get(srv, f"/on/sendfile?path={path}&type=application/x-app")
    assert status == 200 and body == data and headers["content-type"] == "application/x-app"

    # the server level's directory adds to the location's
    also = os.path.join(srv.also, "also.html")
    _write_file(also, b"<p>also</p>\n")
    status, headers, body = _get(srv, f"/on/sendfile?path={also}")
    assert status == 200 and body == b"<p>also</p>\n"
    assert headers["content-type"].startswith("text/html")

    # the worker still answers on (its slot and connection were released cleanly)
    assert srv.get("/hello").status_code == 200


def test_escapes_refused_and_missing_file(apache):
    srv, _ = _sendfile_server(apache)
    secret = os.path.join(srv.outside, "secret.txt")
    _write_file(secret, b"secret\n")
    os.symlink(secret, os.path.join(srv.allowed, "link.txt"))
    os.symlink(srv.outside, os.path.join(srv.allowed, "linkdir"))
    inside = os.path.join(srv.allowed, "ok.txt")
    _write_file(inside, b"ok\n")
    os.symlink(inside, os.path.join(srv.allowed, "inner-link.txt"))

    refused = [
        f"{srv.allowed}/../outside/secret.txt",
        f"{srv.allowed}/link.txt",
        f"{srv.allowed}/linkdir/secret.txt",
        secret,
        "files/allowed/ok.txt",
        "/etc/passwd",
    ]
    for target in refused:
        since = srv.log_offset()
        status, headers, body = _get(srv, f"/on/sendfile?path={target}")
        assert status == 500 and b"secret" not in body and "x-sendfile" not in headers, target
        line = srv.wait_for_log(re.compile(r"SG0531: X-Sendfile " + re.escape(target) + " refused"),
                                since=since)
        assert "[swift_gateway:error]" in line, line

    since = srv.log_offset()
    missing = os.path.join(srv.allowed, "missing.txt")
    status, _, _ = _get(srv, f"/on/sendfile?path={missing}")
    assert status == 404
    srv.wait_for_log(re.compile(r"SG0532: X-Sendfile " + re.escape(missing) + ": no such file"),
                     since=since)

    # a link that stays inside is followed
    status, _, body = _get(srv, f"/on/sendfile?path={srv.allowed}/inner-link.txt")
    assert status == 200 and body == b"ok\n"


def test_off_by_default_header_never_reaches_the_client(apache):
    srv, worker = _sendfile_server(apache)
    path = os.path.join(srv.allowed, "page.txt")
    _write_file(path, b"file bytes\n")
    since = srv.log_offset()
    status, headers, body = _get(srv, f"/sendfile?path={path}&body=3")
    assert status == 200 and body == b"xxx", body
    assert "x-sendfile" not in headers and headers.get("x-gateway-pid") == str(worker)
    srv.wait_for_log(re.compile(r"SG0533: X-Sendfile " + re.escape(path)
                                + " dropped: SwiftSendfile is not On here"), since=since)
