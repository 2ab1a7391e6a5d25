"""Recycling (issue 19): the supervisor replaces workers at their limits without losing a request.

`maximum-requests`, `restart-interval` and `inactivity-timeout` all go through one mechanism:
the worker is sent SIGTERM (it stops accepting, closes its idle connections with a notice,
finishes its requests) while its replacement starts at once. Under load, no request may
fail; every recycle is logged once (SG1013) with its reason, and none counts as a crash
(SG1007)."""

from __future__ import annotations

import re
import time

from sg_harness import BackgroundLoad, note, run_load, wait_until

RECYCLE = re.compile(
    r"SG1013: recycling worker (\d+) \(pid (\d+)\): (maximum-requests|restart-interval|inactivity-timeout) "
    r"reached \([^)]*\); age ([0-9.]+)s, (\d+) requests served, RSS ([0-9.]+) MiB; its replacement starts now")
# Lines that would mean a request or a worker was lost: a crash or restart, a recycled worker
# killed or dying, a request the module could not complete.
TROUBLE = re.compile(r"SG1007|SG1014|SG1015|SG1104|SG050[2-6]|SG0510|SG041[3-6]")


def _site(s, *options: str) -> str:
    return "\n".join([
        s.daemon("site", *options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def _recycles(srv, since: int, reason: str | None = None) -> list[re.Match]:
    found = [m for m in RECYCLE.finditer(srv.error_log_text(since))]
    return [m for m in found if reason is None or m.group(3) == reason]


def _trouble(srv, since: int) -> list[str]:
    return [line for line in srv.error_log_text(since).splitlines() if TROUBLE.search(line)]


def test_maximum_requests_recycles_hundreds_of_workers_without_a_failed_request(apache):
    srv = apache(lambda s: _site(s, "processes=3", "threads=5", "maximum-requests=50"))
    srv.wait_workers("site", 3)
    since = srv.log_offset()
    result = run_load(srv.port, "/hello", total=20_000, concurrency=20, deadline=600)
    recycles = _recycles(srv, since)
    served = sorted(result.pids.values())
    note(f"maximum-requests=50, processes=3 threads=5: {result.summary()}; {len(recycles)} recycles; "
         f"requests per pid: min {served[0]}, median {served[len(served) // 2]}, max {served[-1]}")
    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests == 20_000
    assert result.statuses == {200: 20_000}
    assert len(result.pids) > 300, result.summary()
    # Every worker that went was recycled at its limit: the staggered shares of 50 are 17,
    # 34 and 50, and a worker is never recycled below its own.
    assert len(recycles) >= len(result.pids) - 3 - 3, (len(recycles), len(result.pids))
    assert {m.group(3) for m in recycles} == {"maximum-requests"}
    assert min(int(m.group(5)) for m in recycles) >= 17
    assert all(float(m.group(6)) > 0 for m in recycles), "RSS read from /proc"
    assert _trouble(srv, since) == []


def test_restart_interval_replaces_workers_under_load_without_a_failed_request(apache):
    srv = apache(lambda s: _site(s, "processes=3", "threads=5", "restart-interval=2"))
    first = set(srv.wait_workers("site", 3))
    since = srv.log_offset()
    started = time.monotonic()
    with BackgroundLoad(srv.port, "/hello", concurrency=10, deadline=120) as load:
        # The first three (started together, staggered to 2/3, 4/3 and 2 s), then more.
        wait_until(lambda: len(_recycles(srv, since, "restart-interval")) >= 5, 60,
                   message="five restart-interval recycles")
    result = load.result
    recycles = _recycles(srv, since, "restart-interval")
    note(f"restart-interval=2 under load: {result.summary()}; {len(recycles)} recycles in "
         f"{time.monotonic() - started:.1f}s")
    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests > 0 and result.statuses == {200: result.requests}
    assert first <= {int(m.group(2)) for m in recycles}, "each first worker was recycled"
    assert all(float(m.group(4)) >= 0.6 for m in recycles), "none before its (staggered) interval"
    assert len(result.pids) > 3
    assert _trouble(srv, since) == []
    wait_until(lambda: len(srv.workers("site")) == 3 and not set(srv.workers("site")) & first, 30,
               message="three workers, none of the first")


def test_inactivity_timeout_replaces_idle_workers_once(apache):
    srv = apache(lambda s: _site(s, "processes=2", "threads=5", "inactivity-timeout=2"))
    first = set(srv.wait_workers("site", 2))
    since = srv.log_offset()
    result = run_load(srv.port, "/hello", total=2_000, concurrency=10, deadline=120)
    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    busy = set(result.pids)
    assert busy, result.summary()
    # Idle now: each worker that served requests is recycled (one at a time) and replaced.
    wait_until(lambda: busy <= {int(m.group(2)) for m in _recycles(srv, since, "inactivity-timeout")}, 30,
               message="the workers that served requests recycled as idle")
    wait_until(lambda: len(srv.workers("site")) == 2 and not set(srv.workers("site")) & busy, 30,
               message="idle workers replaced")
    recycles = _recycles(srv, since)
    note(f"inactivity-timeout=2: {result.summary()}; recycled {sorted(int(m.group(2)) for m in recycles)}")
    assert {m.group(3) for m in recycles} == {"inactivity-timeout"}
    assert all(int(m.group(5)) > 0 for m in recycles), "only workers that served requests"
    # Their replacements have served nothing: they are left alone (an idle group is recycled
    # once, not every inactivity-timeout). Generous: twice the timeout and the check interval.
    replacements = set(srv.workers("site"))
    count = len(recycles)
    watch_until = time.monotonic() + 5
    while time.monotonic() < watch_until:
        assert len(_recycles(srv, since)) == count, f"a fresh worker was recycled: {_recycles(srv, since)[count:]}"
        time.sleep(0.2)
    assert set(srv.workers("site")) == replacements
    assert _trouble(srv, since) == []
    # And the replacements serve.
    after = run_load(srv.port, "/hello", total=200, concurrency=4, deadline=60)
    assert after.failures == [] and set(after.pids) <= replacements, after.summary()
