"""Resilience: SIGKILL of a worker and of a supervisor while requests run."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from sg_harness import MIB, expected_pattern_digest, pid_alive, wait_until

BODY = 2 * MIB               # background load: short downloads
HELD_BODY = 128 * MIB        # held downloads: far more than all socket buffers together
HELD = 6                     # held downloads (the client stops reading after the first bytes)
CLIENTS = 15                 # background clients (HELD + CLIENTS < 3 workers x threads=10)
MAX_PER_CLIENT = 60          # bounds the load loop in count ...
LOAD_DEADLINE = 90.0         # ... and in time


@dataclass
class Outcome:
    start: float
    end: float = 0.0
    status: int | None = None
    pid: int | None = None
    kind: str = ""           # ok | status | aborted | truncated | corrupt | error
    detail: str = ""
    held: bool = False


def _fetch(url: str, size: int, expected_sha: str, inflight: dict, lock: threading.Lock,
           hold: threading.Event | None = None, started: list | None = None) -> Outcome:
    """GET a /bytes URL, streaming; classify the outcome.  With `hold`, read the first
    64 KiB, report the pid in `started`, and read on only once `hold` is set."""
    o = Outcome(start=time.monotonic(), held=hold is not None)
    try:
        r = requests.get(url, stream=True, timeout=(10, 60), headers={"Connection": "close"})
        o.status = r.status_code
        if "X-Gateway-Pid" in r.headers:
            o.pid = int(r.headers["X-Gateway-Pid"])
        if r.status_code != 200:
            o.detail = r.text[:200]
            o.kind = "status"
            return o
        with lock:
            inflight[o.pid] = inflight.get(o.pid, 0) + 1
        try:
            h = hashlib.sha256()
            n = 0
            chunks = r.iter_content(64 * 1024)
            if hold is not None:
                first = next(chunks, b"")
                h.update(first)
                n += len(first)
                with lock:
                    started.append(o.pid)
                hold.wait(60)
            for chunk in chunks:
                h.update(chunk)
                n += len(chunk)
        finally:
            with lock:
                inflight[o.pid] -= 1
        if n != size:
            o.kind, o.detail = "truncated", f"clean end after {n} of {size} bytes"
        elif h.hexdigest() != expected_sha:
            o.kind = "corrupt"
        else:
            o.kind = "ok"
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
            requests.exceptions.ReadTimeout) as e:
        o.kind = "aborted" if o.status is not None else "error"
        o.detail = repr(e)[:300]
    except Exception as e:  # noqa: BLE001
        o.kind, o.detail = "error", repr(e)[:300]
    finally:
        o.end = time.monotonic()
    return o


def test_sigkill_of_a_worker_fails_only_its_inflight_requests(apache):
    """Background load of short downloads plus HELD long downloads whose client pauses
    after the first bytes (so their worker is provably mid-response).  One worker with
    held downloads is SIGKILLed.  Its held downloads must be aborted (headers were sent);
    every other held download must complete byte-exact; background failures may only be
    502s or aborted bodies of the victim, and only for requests in flight at its death."""
    srv = apache(lambda s: "\n".join([
        s.daemon("django", "processes=3", "threads=10"),
        "SwiftProcessGroup django",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    srv.wait_workers("django", 3)
    before = srv.wait_distinct_pids("/", 3)
    supervisor = srv.supervisors()["django"]

    url = srv.url(f"/bytes?n={BODY}")
    expected = expected_pattern_digest(BODY)
    held_url = srv.url(f"/bytes?n={HELD_BODY}")
    held_expected = expected_pattern_digest(HELD_BODY)
    inflight: dict[int | None, int] = {}
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    held_pids: list[int | None] = []
    release = threading.Event()
    stop = threading.Event()
    load_end = time.monotonic() + LOAD_DEADLINE

    def client() -> None:
        for _ in range(MAX_PER_CLIENT):
            if stop.is_set() or time.monotonic() > load_end:
                return
            o = _fetch(url, BODY, expected, inflight, lock)
            with lock:
                outcomes.append(o)

    def held_client() -> None:
        o = _fetch(held_url, HELD_BODY, held_expected, inflight, lock, hold=release, started=held_pids)
        with lock:
            outcomes.append(o)
            if o.pid is None or o.kind == "status":
                held_pids.append(None)    # never started streaming: unblock the wait below

    with ThreadPoolExecutor(max_workers=CLIENTS + HELD) as ex:
        try:
            futures = [ex.submit(held_client) for _ in range(HELD)]
            futures += [ex.submit(client) for _ in range(CLIENTS)]

            # every held download has its headers and first bytes (bounded wait)
            wait_until(lambda: len(held_pids) >= HELD, 60, message="the held downloads to start")
            with lock:
                assert None not in held_pids, f"a held download failed before the kill: {outcomes}"
                counts = {p: held_pids.count(p) for p in set(held_pids)}
                done_before = len(outcomes)
            victim = max(counts, key=counts.get)
            assert victim in before
            offset = srv.log_offset()
            os.kill(victim, signal.SIGKILL)
            # Dead once reaped: a zombie thread-group leader may still have exiting threads,
            # and open sockets, behind it.
            srv.wait_for_log(f"(pid {victim}) killed by signal 9", since=offset)
            t_dead = time.monotonic()
            release.set()

            # keep the load going for a while after the death (bounded)
            def enough_after() -> bool:
                with lock:
                    return sum(o.start > t_dead for o in outcomes) >= 100
            wait_until(enough_after, 60, interval=0.05, message="100 requests after the kill")
        finally:
            release.set()
            stop.set()
        for f in futures:
            f.result(timeout=180)

    failures = [o for o in outcomes if o.kind != "ok"]
    summary = (f"victim={victim} (held downloads per worker: {counts}; {done_before} requests done "
               f"before the kill), {len(outcomes)} requests, {len(failures)} failed: "
               + "; ".join(f"{'held ' if o.held else ''}{o.kind} status={o.status} pid={o.pid} "
                           f"start{'<' if o.start < t_dead else '>'}death {o.detail[:120]}"
                           for o in failures[:8]))
    print(summary)

    held = [o for o in outcomes if o.held]
    assert len(held) == HELD
    for o in held:
        if o.pid == victim:
            assert o.kind == "aborted", (
                f"a download in flight on the killed worker did not end in an aborted connection "
                f"({o.kind}: {o.detail}): {summary}")
        else:
            assert o.kind == "ok", f"a download on a surviving worker {o.pid} failed: {summary}"
    for o in failures:
        # a failure is either a 502 (before headers) or an aborted body from the victim
        assert (o.kind == "status" and o.status == 502) or (o.kind == "aborted" and o.pid == victim), \
            f"failure not allowed ({o.kind}, status {o.status}, pid {o.pid}): {summary}"
        # ... and only for requests that were already in flight when the worker died
        assert o.start < t_dead, f"a request started after the worker died failed: {summary}"
    assert len(failures) <= 10, f"more failures than the victim's threads=10 slots: {summary}"
    assert all(o.pid != victim for o in outcomes if o.start > t_dead), "dead pid answered"
    assert sum(o.kind == "ok" and o.start > t_dead for o in outcomes) >= 100

    # the supervisor (not Apache) replaces the worker
    def replaced() -> list[int] | None:
        w = srv.workers("django")
        return w if len(w) == 3 and victim not in w else None
    now_workers = wait_until(replaced, 30, message="3 django workers without the victim")
    assert srv.supervisors().get("django") == supervisor, "the supervisor changed"
    after = srv.wait_distinct_pids("/", 3)
    assert victim not in after and after == set(now_workers), (after, now_workers)
    assert len(after - before) == 1, f"expected exactly one new worker: before {before}, after {after}"

    # 500 requests after that: no failure
    bad = []
    for i in range(500):
        try:
            r = srv.get("/")
            if r.status_code != 200 or r.headers.get("X-Gateway-Group") != "django":
                bad.append((i, r.status_code, r.text[:100]))
        except requests.RequestException as e:
            bad.append((i, repr(e)))
    assert not bad, f"{len(bad)} of 500 requests after the replacement failed: {bad[:5]}"


def test_sigkill_of_a_supervisor_loses_no_request_sent_after_it(apache):
    srv = apache(lambda s: "\n".join([
        s.daemon("django", "processes=3", "threads=10"),
        "SwiftProcessGroup django",
        f"SwiftScriptAlias / {s.bin}",
    ]))
    old_workers = set(srv.wait_workers("django", 3))
    srv.wait_distinct_pids("/", 3)
    old_sup = srv.supervisors()["django"]
    socket_before = srv.group_socket("django")

    os.kill(old_sup, signal.SIGKILL)
    t_kill = time.monotonic()

    # immediately: 100 requests from 10 clients (each bounded by its timeout)
    def one(i: int):
        try:
            r = requests.get(srv.url(f"/after-kill/{i}"), timeout=90, headers={"Connection": "close"})
            return (i, r.status_code, r.headers.get("X-Gateway-Group"), r.headers.get("X-Gateway-Pid"),
                    r.text[:120])
        except requests.RequestException as e:
            return (i, None, None, None, repr(e)[:200])
    with ThreadPoolExecutor(max_workers=10) as ex:
        results = list(ex.map(one, range(100)))
    bad = [r for r in results if r[1] != 200 or r[2] != "django"]
    print(f"supervisor {old_sup} killed; 100 requests sent after it, "
          f"{time.monotonic() - t_kill:.1f}s until all answered; failures: {bad[:10]}")
    assert not bad, f"{len(bad)} of 100 requests sent after the supervisor kill failed: {bad[:10]}"

    # Apache started a new supervisor for the group, on the same socket
    new_sup = wait_until(lambda: srv.supervisors().get("django") not in (None, old_sup), 30,
                         message="a new django supervisor")
    assert new_sup != old_sup
    assert srv.group_socket("django") == socket_before, "the listening socket was replaced"
    new_workers = set(srv.wait_workers("django", 3))
    assert not new_workers & old_workers
    # the old workers do not outlive their supervisor (docs/architecture.md: PR_SET_PDEATHSIG)
    wait_until(lambda: not any(pid_alive(p) for p in old_workers), 30,
               message=f"old workers {sorted(old_workers)} to exit after their supervisor died")
