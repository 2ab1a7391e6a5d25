"""Streaming: 200 MiB both ways, byte-exact, with bounded memory; chunked uploads; no deadlock.

Memory: VmRSS of the worker (X-Gateway-Pid) and of every Apache child is sampled
before the transfer and every 100 ms during it; the peak may exceed the
baseline by at most 50 MiB.  Throughput is printed, never asserted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time

import pytest

from sg_harness import (MIB, RandomUpload, RssMonitor, duplex_request, expected_pattern_digest,
                        note, proc_rss_bytes)

SIZE = 200 * MIB
RSS_LIMIT = 50 * MIB


def _stream_server(apache):
    # one worker, so the measured worker is the one that serves
    srv = apache(lambda s: "\n".join([
        s.daemon("stream", "processes=1", "threads=10"),
        "SwiftProcessGroup stream",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    (worker,) = srv.wait_workers("stream", 1)
    return srv, worker


def _warm_up(srv, page: str) -> int:
    """Small transfers of the same kind first, so lazily allocated pools exist before the baseline."""
    for _ in range(2):
        if page == "echo":
            data = os.urandom(4 * MIB)
            res = duplex_request(srv.port, "POST", "/echo", [data], len(data))
            assert not res.error and res.status == 200, f"warm-up echo failed: {res}"
            assert res.sha256 == hashlib.sha256(data).hexdigest(), "warm-up echo differs"
            pid = int(res.headers["x-gateway-pid"])
        else:
            r = srv.get(f"/bytes?n={4 * MIB}")
            assert r.status_code == 200 and len(r.content) == 4 * MIB
            pid = int(r.headers["X-Gateway-Pid"])
    return pid


def _monitor(srv, worker: int) -> RssMonitor:
    return RssMonitor(lambda: [worker, *srv.apache_children()])


def _assert_rss(mon: RssMonitor, srv, worker: int, what: str) -> None:
    growth = mon.growth()
    print(f"{what} RSS: {mon.report()}")
    assert worker in growth and proc_rss_bytes(worker) is not None, "worker disappeared"
    over = {pid: g for pid, g in growth.items() if g > RSS_LIMIT}
    assert not over, (
        f"{what}: RSS grew by more than 50 MiB: "
        + ", ".join(f"{'worker' if p == worker else 'apache child'} {p}: +{g / MIB:.1f} MiB"
                    for p, g in over.items()))


def test_upload_200mib_echoed_byte_exact_with_bounded_rss(apache):
    srv, worker = _stream_server(apache)
    assert _warm_up(srv, "echo") == worker
    upload = RandomUpload(SIZE)
    with _monitor(srv, worker) as mon:
        res = duplex_request(srv.port, "POST", "/echo", upload, SIZE, stall_timeout=60)
    assert not res.error and not res.send_error, res
    assert res.status == 200, res
    assert res.headers.get("x-gateway-pid") == str(worker)
    assert res.sent == SIZE
    assert res.received == SIZE, f"echo returned {res.received} of {SIZE} bytes"
    assert res.sha256 == upload.sha.hexdigest(), "echoed bytes differ from the upload"
    note(f"upload+echo 200 MiB (Content-Length): {2 * SIZE / MIB / res.seconds:.0f} MiB/s "
         f"(both directions together, {res.seconds:.1f}s)")
    _assert_rss(mon, srv, worker, "upload+echo")


def test_download_200mib_byte_exact_with_bounded_rss(apache):
    srv, worker = _stream_server(apache)
    assert _warm_up(srv, "bytes") == worker
    expected = expected_pattern_digest(SIZE)
    h = hashlib.sha256()
    received = 0
    with _monitor(srv, worker) as mon:
        r = srv.get(f"/bytes?n={SIZE}", stream=True)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert r.headers.get("X-Gateway-Pid") == str(worker)
        assert r.headers.get("Content-Type", "").startswith("application/octet-stream")
        t0 = time.monotonic()
        for chunk in r.iter_content(MIB):
            h.update(chunk)
            received += len(chunk)
        seconds = time.monotonic() - t0
    assert received == SIZE, f"downloaded {received} of {SIZE} bytes"
    assert h.hexdigest() == expected, "downloaded bytes are not i % 256"
    note(f"download 200 MiB: {SIZE / MIB / seconds:.0f} MiB/s ({seconds:.1f}s)")
    _assert_rss(mon, srv, worker, "download")


def test_whole_short_response_gets_content_length_long_one_is_chunked(apache):
    """The module hands httpd a response that arrived whole together with its end, so httpd
    sends it with a Content-Length in one write; a longer one is passed on as it arrives."""
    srv, _ = _stream_server(apache)
    for _ in range(3):     # first and kept-alive connections alike
        r = srv.get("/hello")
        assert r.status_code == 200 and r.content == b"Hello world!\n"
        assert r.headers.get("Content-Length") == "13", dict(r.headers)
        assert "Transfer-Encoding" not in r.headers, dict(r.headers)
    r = srv.get(f"/bytes?n={4 * MIB}")
    assert r.status_code == 200 and len(r.content) == 4 * MIB
    assert r.headers.get("Transfer-Encoding") == "chunked", dict(r.headers)


@pytest.mark.parametrize("size", [0, 1, 5 * MIB + 12345])
def test_chunked_upload_of_unknown_length_with_curl(apache, size):
    """curl reads the body from a pipe (unknown length) and sends it chunked."""
    srv, _ = _stream_server(apache)
    upload = RandomUpload(size, chunk_sizes=[1, 7, 4096, 65537, 300000])
    proc = subprocess.Popen(
        ["curl", "-sS", "--fail-with-body", "--max-time", "300", "-X", "POST", "-T", "-",
         "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/octet-stream",
         "-H", "Expect:", "-D", "/dev/stderr", "-o", "-", srv.url("/echo")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def feed():
        try:
            for chunk in upload:
                proc.stdin.write(chunk)
                proc.stdin.flush()
        finally:
            proc.stdin.close()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    h = hashlib.sha256()
    received = 0
    while True:
        data = proc.stdout.read1(MIB)
        if not data:
            break
        h.update(data)
        received += len(data)
    rc = proc.wait(timeout=300)
    feeder.join(timeout=30)
    headers = proc.stderr.read().decode("latin-1", "replace")
    assert rc == 0, f"curl rc={rc}\n{headers}"
    assert headers.split(" ", 2)[1] == "200", headers
    assert "x-gateway-pid" in headers.lower(), headers
    assert received == size, f"echo returned {received} of {size} bytes\n{headers}"
    assert h.hexdigest() == upload.sha.hexdigest()


def test_chunked_put_of_unknown_length_with_raw_client(apache):
    """The same with a second, independent client (PUT, irregular chunk sizes)."""
    srv, _ = _stream_server(apache)
    upload = RandomUpload(3 * MIB + 5, chunk_sizes=[100000, 3, 777777])
    res = duplex_request(srv.port, "PUT", "/echo", upload, None)
    assert not res.error and not res.send_error, res
    assert res.status == 200, res
    assert (res.received, res.sha256) == (upload.total, upload.sha.hexdigest())


def test_many_tiny_chunks_in_one_packet_are_echoed_byte_exact(apache):
    """Tens of thousands of 1–13 byte chunks sent at once: httpd's dechunking hands the module
    one chunk per read, so they go to the worker as as many tiny STDIN records, several per
    sendmsg (read without waiting after the first), without loss or reordering."""
    import http.client
    import random
    srv, _ = _stream_server(apache)
    rng = random.Random(0x5717)
    chunks = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 13))) for _ in range(30000)]
    chunks += [os.urandom(70000), b"x", os.urandom(9000)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest("PUT", "/echo")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        conn.send(wire)
        res = conn.getresponse()
        body = res.read()
    finally:
        conn.close()
    assert res.status == 200
    expected = b"".join(chunks)
    assert len(body) == len(expected) and body == expected


def test_echo_200mib_chunked_full_duplex_does_not_deadlock(apache):
    """The client sends and reads at the same time; the app echoes as it reads.  A shim that
    forwards the whole upload before reading the response deadlocks here; the stall
    watchdog (no progress in 60 s) turns that into a failure instead of a hang."""
    srv, worker = _stream_server(apache)
    upload = RandomUpload(SIZE)
    res = duplex_request(srv.port, "POST", "/echo", upload, None, stall_timeout=60)
    assert not res.error, f"/echo did not complete: {res.error}"
    assert not res.send_error, res.send_error
    assert res.status == 200, res
    assert res.received == SIZE and res.sent == SIZE, res
    assert res.sha256 == upload.sha.hexdigest()
    note(f"chunked upload+echo 200 MiB: {2 * SIZE / MIB / res.seconds:.0f} MiB/s "
         f"(both directions together, {res.seconds:.1f}s)")
