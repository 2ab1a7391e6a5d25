"""Scaling and transient groups (issue 20).

- `processes=N maximum-processes=M`: while every request slot of every worker is busy (room 0
  on the scoreboard) the supervisor starts one more worker, at most one every 0.5 s, up to M
  (SG1024); an extra worker idle for `inactivity-timeout` (30 s when that is 0) exits
  (SG1025), down to N.
- `processes=0`: no worker until a connection waits on the group's socket; then the
  supervisor starts one (SG1026) and the requests wait for it in the socket's queue (within
  `startup-timeout`) instead of failing; the last worker exits once idle for
  `inactivity-timeout`.

Both under load, counting every failed request (status >= 500 or a connection error)."""

from __future__ import annotations

import os
import re
import threading
import time

import requests

from sg_harness import (HOST, BackgroundLoad, LogWatcher, ScoreboardSampler, build_scoreboard_dump,
                        group_workers, note, proc_environ, wait_until)

FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"
SCALE_UP = re.compile(r"SG1024")
SCALE_DOWN = re.compile(r"SG1025")
STARTED_ON_DEMAND = re.compile(r"SG1026")
STARTED = re.compile(r"SG1005: started worker")
# Lines that would mean a request or a worker was lost (as test_recycling.py's).
TROUBLE = re.compile(r"SG1007|SG1014|SG1015|SG1104|SG050[2-6]|SG0510|SG041[3-6]")


def _spawn_time(pid: int) -> float | None:
    """When a process started, in seconds since boot (/proc/PID/stat's starttime, in clock
    ticks): the kernel's own record, unlike when a log watcher happened to see a line."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _site(s, *options: str) -> str:
    return "\n".join([
        s.daemon("site", *options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def test_group_grows_to_maximum_processes_under_queued_load_and_shrinks_when_idle(apache, tmp_path):
    dump = build_scoreboard_dump(str(tmp_path))
    # threads=4: 16 clients on a 200 ms page keep every slot of up to 4 workers busy.
    srv = apache(lambda s: _site(s, FAULTS, "processes=1", "maximum-processes=4", "threads=4",
                                 "inactivity-timeout=3"))
    srv.wait_workers("site", 1)
    supervisor = srv.supervisors()["site"]
    assert proc_environ(supervisor).get("SWIFT_GATEWAY_MAXIMUM_PROCESSES") == "4"
    since = srv.log_offset()
    log = LogWatcher(srv, since)
    with log:
        with (ScoreboardSampler(srv, "site", dump, minimum=1) as board,
              BackgroundLoad(srv.port, "/sleep?ms=200", concurrency=16, deadline=60) as load):
            started = time.monotonic()
            spawned: dict[int, float] = {}

            def four_workers() -> bool:
                pids = group_workers(supervisor)
                for pid in pids:
                    if pid not in spawned and (at := _spawn_time(pid)) is not None:
                        spawned[pid] = at
                return len(pids) >= 4
            wait_until(four_workers, 20, interval=0.05, message="four workers")
            # The load goes on for 10 s (the board sampler watches the group's size meanwhile).
            time.sleep(max(0.0, started + 10 - time.monotonic()))
        result = load.result
        ended = time.monotonic()
        wait_until(lambda: len(group_workers(supervisor)) == 1, 30, interval=0.05, message="back to one worker")
        shrunk = time.monotonic() - ended
    # When the board first had 2, 3 and 4 workers (any state: a worker counts from its spawn).
    peak = max(len(s.pids) for s in board.samples)
    grown = {k: next(s.at - started for s in board.samples if len(s.pids) >= k) for k in range(2, peak + 1)}
    ups = [line for _, line in log.find(SCALE_UP)]
    downs = [line for _, line in log.find(SCALE_DOWN)]
    note(f"scaling processes=1 maximum-processes=4 threads=4, 16 clients on /sleep?ms=200: {result.summary()}")
    note("scaling: 2, 3, 4 workers on the board after " + ", ".join(f"{grown[k]:.2f}s" for k in sorted(grown))
         + " of load (SG1024 after " + ", ".join(f"{t - started:.2f}s" for t, _ in log.find(SCALE_UP)) + ")"
         + f"; back to 1 worker {shrunk:.1f}s after the load (inactivity-timeout=3); {board.summary()}")
    note(f"  {ups[0].strip() if ups else 'no SG1024 line'}")
    note(f"  {downs[0].strip() if downs else 'no SG1025 line'}")

    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests > 0 and result.statuses == {200: result.requests}, result.summary()
    assert peak == 4, f"at most {peak} workers on the board"
    assert len(result.pids) >= 4, result.summary()
    # At most one start every 0.5 s: the workers' start times as the kernel recorded them (in
    # clock ticks; a log watcher's times drift with the machine's load).
    assert len(ups) == 3, ups
    assert len(spawned) == 4, spawned
    starts = sorted(spawned.values())
    assert all(later - earlier >= 0.48 for earlier, later in zip(starts, starts[1:])), starts
    assert len(downs) >= 3, downs
    assert board.low() == [], f"{board.summary()}: {board.low()[:5]}"
    assert [line for _, line in log.find(TROUBLE)] == []


def test_transient_group_starts_a_worker_for_the_first_request_and_stops_it_when_idle(apache):
    srv = apache(lambda s: _site(s, "processes=0", "threads=10", "inactivity-timeout=3"),
                 ready_path=None)
    since = 0
    with LogWatcher(srv, since) as log:
        log.wait_for(re.compile(r"SG1002"), timeout=30)
        # No worker before the first request: watched for a second after the supervisor started.
        watch_until = time.monotonic() + 1
        while time.monotonic() < watch_until:
            assert srv.workers("site") == [], "a worker started before any request"
            time.sleep(0.05)

        # Ten clients arrive together at the cold group, then keep sending for 3 s.
        clients = 10
        barrier = threading.Barrier(clients)
        # (sent, answered) of each client's first request, monotonic times.
        first_answer: list[tuple[float, float]] = []
        failures: list[str] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            session = requests.Session()
            barrier.wait()
            began = time.monotonic()
            first = True
            while first or time.monotonic() < began + 3:
                try:
                    r = session.get(f"http://{HOST}:{srv.port}/hello", timeout=30)
                except requests.RequestException as e:
                    with lock:
                        failures.append(repr(e))
                    first = False
                    continue
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code >= 500:
                        failures.append(f"status {r.status_code}")
                    if first:
                        first_answer.append((began, time.monotonic()))
                first = False
            session.close()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        load_ended = time.monotonic()
        workers_under_load = len(srv.workers("site"))
        on_demand = log.wait_for(STARTED_ON_DEMAND, timeout=5)

        # Idle: the last worker exits.
        wait_until(lambda: srv.workers("site") == [], 20, interval=0.05, message="no worker once idle")
        idle_exit = time.monotonic() - load_ended

        # A new request starts one again.
        began = time.monotonic()
        again = srv.get("/hello", timeout=30)
        second_cold_start = time.monotonic() - began
        log.wait_for(STARTED_ON_DEMAND, count=2, timeout=5)
    # The cold start: from the first request sent to the first answer (a client that got to
    # send later waited less).
    cold_start = min(a for _, a in first_answer) - min(s for s, _ in first_answer)
    slowest_first = max(a - s for s, a in first_answer)
    note(f"transient group (processes=0): {len(statuses)} requests from {clients} clients, "
         f"{len(failures)} failed; cold start (first request sent to first answer) {cold_start:.3f}s, "
         f"slowest first answer {slowest_first:.3f}s; {workers_under_load} worker(s) under load; "
         f"no worker {idle_exit:.1f}s after the load (inactivity-timeout=3); "
         f"a later cold start {second_cold_start:.3f}s")
    note(f"  {on_demand[0][1].strip()}")

    assert failures == [], failures[:10]
    assert len(first_answer) == clients and set(statuses) == {200}, (first_answer, set(statuses))
    assert again.status_code == 200
    assert len(srv.workers("site")) >= 1
    assert [line for _, line in log.find(TROUBLE)] == []
