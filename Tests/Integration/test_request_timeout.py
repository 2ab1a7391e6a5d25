"""request-timeout (issue 19): a request running past it is given up on, the rest of the site is not.

The supervisor sees every request's start on the scoreboard. Past `request-timeout` it marks
the request's slot cancelled and sends the worker SIGUSR2; the worker cancels the request's
task and answers 504 (SG1122). A request whose slot is still held a second later makes its
worker stuck: recycled (SG1013) when the worker acted on the cancel, killed (SG1020) when its
event loop never did. Requests running beside it on the same worker finish; the next request
is served by a new worker. Every bound asserted here is the issue's: 504 within
request-timeout + 2 s."""

from __future__ import annotations

import concurrent.futures
import re
import time

import requests

from sg_harness import BackgroundLoad, note, wait_until

FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"
TIMEOUT = 3
# The bound: the client of a request given up on has its 504 within S + 2 s.
ANSWER_BOUND = TIMEOUT + 2
# Requests beside the one given up on start SLEEPERS_AFTER seconds after it and run
# SLEEPER_MS: past its 504 (at TIMEOUT) and, for a stuck worker, past its recycle (a second
# later), each well within request-timeout itself.
SLEEPERS_AFTER = 1.8
SLEEPER_MS = 2500


def _site(s, *options: str) -> str:
    return "\n".join([
        s.daemon("site", "processes=1", "threads=5", "graceful-timeout=8", FAULTS, f"request-timeout={TIMEOUT}",
                 *options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def _timed_get(url: str) -> tuple[int, float, dict[str, str], str]:
    started = time.monotonic()
    r = requests.get(url, headers={"Connection": "close"}, timeout=60)
    return r.status_code, time.monotonic() - started, dict(r.headers), r.text


def _recycled(srv, pid: int, since: int) -> re.Match | None:
    pattern = re.compile(rf"SG1013: recycling worker \d+ \(pid {pid}\): (request-timeout[^;]*);")
    return pattern.search(srv.error_log_text(since))


def _give_up(srv, page: str, stuck: bool) -> None:
    """`page` on the group's one worker, with two sleepers and a load of /hello beside it."""
    (worker,) = srv.wait_workers("site", 1)
    since = srv.log_offset()
    with BackgroundLoad(srv.port, "/hello", concurrency=2, deadline=120) as load:
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            sent = time.monotonic()
            given_up = pool.submit(_timed_get, srv.url(page))
            srv.wait_for_log(re.compile(rf"on purpose in pid {worker}"), since=since)
            # Not a synchronisation: where the sleepers run, relative to the request's timeout.
            time.sleep(max(0.0, sent + SLEEPERS_AFTER - time.monotonic()))
            sleepers = [pool.submit(_timed_get, srv.url(f"/sleep?ms={SLEEPER_MS}")) for _ in range(2)]
            status, seconds, headers, body = given_up.result(timeout=60)
            beside = [future.result(timeout=60) for future in sleepers]
        if stuck:
            recycle = wait_until(lambda: _recycled(srv, worker, since), 30,
                                 message=f"the stuck worker {worker} recycled")
            wait_until(lambda: worker not in srv.workers("site") and len(srv.workers("site")) == 1, 30,
                       message="the stuck worker gone, its replacement running")
        else:
            recycle = None
        after = srv.get("/hello")
    result = load.result
    log = srv.error_log_text(since)
    note(f"request-timeout={TIMEOUT} {page}: {status} after {seconds:.2f}s; beside it "
         f"{[(b[0], round(b[1], 2)) for b in beside]}; /hello load {result.summary()}"
         + (f"; recycled: {recycle.group(1)}" if recycle else ""))
    assert status == 504, (status, headers, body[:300])
    assert body == "Gateway Timeout\n"
    assert seconds < ANSWER_BOUND, f"504 after {seconds:.2f}s"
    assert re.search(r"SG1122: .*GET " + re.escape(page) + r" .*answered 504", log), log[-3000:]
    assert [b[0] for b in beside] == [200, 200], beside
    assert all(b[2].get("X-Gateway-Pid") == str(worker) for b in beside), "the sleepers ran beside it"
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests > 0
    assert after.status_code == 200
    if stuck:
        assert after.headers.get("X-Gateway-Pid") != str(worker), "a new worker serves the next request"
        # Its drain did not wait graceful-timeout for code that will never end.
        assert re.search(rf"\[pid {worker}\] .*SG1123: drained but for 1 requests given up on", log), log[-3000:]
        assert "SG1104" not in log and "SG1014" not in log
    else:
        # The cancelled task returned: its worker goes on.
        assert _recycled(srv, worker, since) is None
        assert "SG1020" not in log


def test_a_request_that_awaits_cancellably_is_answered_504_and_its_worker_goes_on(apache):
    srv = apache(lambda s: _site(s))
    _give_up(srv, "/hang", stuck=False)


def test_a_request_that_ignores_cancellation_is_answered_504_and_its_worker_recycled(apache):
    srv = apache(lambda s: _site(s))
    _give_up(srv, "/never-return", stuck=True)


def test_a_spinning_request_on_the_thread_pool_is_answered_504_and_its_worker_recycled(apache):
    srv = apache(lambda s: _site(s, "executor=thread-pool"))
    _give_up(srv, "/spin", stuck=True)


def test_a_spinning_request_on_the_event_loop_is_answered_504_by_apache_and_the_group_recovers(apache):
    # The loop is blocked: the worker can neither answer nor acknowledge the cancel. The
    # supervisor kills it (SG1020) and Apache answers 504 itself (SG0520, or SG0519 when its
    # own backstop comes first).
    srv = apache(lambda s: _site(s))
    (worker,) = srv.wait_workers("site", 1)
    since = srv.log_offset()
    status, seconds, headers, body = _timed_get(srv.url("/spin"))
    note(f"request-timeout={TIMEOUT} /spin on the event loop: {status} after {seconds:.2f}s")
    assert status == 504, (status, headers, body[:300])
    assert seconds < ANSWER_BOUND, f"504 after {seconds:.2f}s"
    srv.wait_for_log(re.compile(rf"SG1020: .*\(pid {worker}\)"), since=since, timeout=30)
    wait_until(lambda: worker not in srv.workers("site") and len(srv.workers("site")) == 1, 30,
               message="the blocked worker replaced")
    after = srv.get("/hello")
    assert after.status_code == 200 and after.headers.get("X-Gateway-Pid") != str(worker)
