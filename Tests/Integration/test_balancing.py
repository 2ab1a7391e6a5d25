"""Balancing (issue 3): a worker whose request slots are all taken gets no new request while a
sibling has a free one — waiting connections stay in the kernel backlog for the idle worker."""

from __future__ import annotations

import re
import socket

FAULTS = "env=SWIFT_GATEWAY_EXAMPLE_FAULTS=1"


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
