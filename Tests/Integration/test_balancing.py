"""Balancing (issue 3): a worker whose request slots are all taken gets no new request while a
sibling has a free one — new connections stay in the kernel backlog for the idle worker, and a
request on a kept connection to the busy one is turned away (FCGI_OVERLOADED) and sent there."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from sg_harness import listen_queue, wait_until

FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"


def test_a_worker_with_no_free_slot_gets_no_request_while_a_sibling_is_idle(apache):
    srv = apache(lambda s: "\n".join([
        s.daemon("site", "processes=2", "threads=1", FAULTS),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    workers = set(srv.wait_distinct_pids("/", 2))
    offset = srv.log_offset()
    # Take the only slot of one worker with a request that never finishes.
    hold = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        hold.sendall(b"GET /hang HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        line = srv.wait_for_log(re.compile(r"hanging on purpose in pid (\d+)"), since=offset)
        busy = int(re.search(r"hanging on purpose in pid (\d+)", line).group(1))
        assert busy in workers
        idle = (workers - {busy}).pop()
        # Every later request must go to the idle sibling; one sent to the busy worker would hang.
        pids = []
        for _ in range(60):
            r = srv.get("/", timeout=10)
            assert r.status_code == 200, (r.status_code, r.text[:200])
            pids.append(int(r.headers["X-Gateway-Pid"]))
        assert set(pids) == {idle}, f"busy worker {busy} got requests: {pids}"
        print(f"busy worker {busy}: 0 of 60 requests; idle worker {idle}: 60 of 60")
    finally:
        hold.close()


# ---- a full backlog: requests wait in the kernel's queue, in turn ----------

def _queued_group(apache, connect_timeout: int):
    """One worker with one slot and the smallest backlog, its slot held by /hang."""
    srv = apache(lambda s: "\n".join([
        s.daemon("q", "processes=1", "threads=1", "listen-backlog=1",
                 f"connect-timeout={connect_timeout}", "socket-timeout=6", FAULTS),
        "SwiftProcessGroup q",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    (worker,) = srv.wait_workers("q", 1)
    offset = srv.log_offset()
    hold = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    hold.sendall(b"GET /hang HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    srv.wait_for_log("hanging on purpose", since=offset)
    return srv, worker, hold


def _get_in_threads(srv, count: int) -> tuple[list[threading.Thread], list[object]]:
    results: list[object] = [None] * count

    def one(i: int) -> None:
        try:
            results[i] = srv.get("/", timeout=30)
        except Exception as e:  # noqa: BLE001 - the assertion reports it
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return threads, results


def test_requests_beyond_a_full_backlog_are_served_once_a_worker_takes_them(apache):
    """With the backlog full, further requests wait (in connect) rather than fail; a worker
    that becomes free (here: the restarted one after SIGKILL) serves every one of them."""
    srv, worker, hold = _queued_group(apache, connect_timeout=30)
    try:
        threads, results = _get_in_threads(srv, 5)
        sock = srv.group_socket("q")
        wait_until(lambda: listen_queue(sock) >= 2, 10, message="the group's backlog is full")
        offset = srv.log_offset()
        os.kill(worker, signal.SIGKILL)
        for t in threads:
            t.join(40)
        statuses = [r.status_code if hasattr(r, "status_code") else repr(r) for r in results]
        assert statuses == [200] * 5, f"{statuses}\n{srv.error_log_text(offset)[-3000:]}"
        assert "SG0413" not in srv.error_log_text(offset)
    finally:
        hold.close()


def test_a_backlog_full_for_connect_timeout_is_503_with_sg0413(apache):
    """Requests that find the backlog full wait connect-timeout, then get 503 and SG0413;
    those queued in the backlog wait for their answer up to socket-timeout (504, SG0503)."""
    srv, _, hold = _queued_group(apache, connect_timeout=2)
    try:
        offset = srv.log_offset()
        threads, results = _get_in_threads(srv, 5)
        for t in threads:
            t.join(40)
        assert not any(t.is_alive() for t in threads), "a request hung"
        statuses = [r.status_code if hasattr(r, "status_code") else repr(r) for r in results]
        assert set(statuses) <= {503, 504} and 503 in statuses, statuses
        log = srv.error_log_text(offset)
        assert re.search(r"SG0413: group q: the backlog of socket \S+ stayed full for "
                         r"connect-timeout=2 s", log), log[-3000:]
    finally:
        hold.close()


def test_a_request_that_waited_longer_than_queue_timeout_gets_503_with_retry_after(apache):
    """queue-timeout: a request that starts more than S seconds after Apache read it is
    answered 503 with Retry-After, without running; one that did not wait runs."""
    srv = apache(lambda s: "\n".join([
        s.daemon("q", "processes=1", "threads=1", "queue-timeout=1", FAULTS),
        "SwiftProcessGroup q",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    srv.wait_workers("q", 1)
    offset = srv.log_offset()
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(srv.get, "/sleep?ms=2500", timeout=30)
        srv.wait_for_log("sleeping 2500 ms on purpose", since=offset)
        waited = srv.get("/env", timeout=30)     # waits for the only slot, about 2.5 s
        assert slow.result().status_code == 200
    log = srv.error_log_text(offset)
    assert waited.status_code == 503, (waited.status_code, waited.text[:300])
    assert waited.headers.get("Retry-After") == "1", dict(waited.headers)
    assert re.search(r"SG1120: the request waited \S+ for a request slot, longer than queue-timeout 1\.0s", log), log[-2000:]
    ok = srv.get("/hello", timeout=10)
    assert ok.status_code == 200, ok.status_code
