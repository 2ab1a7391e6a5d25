"""Rolling reloads (issue 20): a group rolls onto a new program with no failed request.

With `reload=on` (the default) the supervisor polls the group's program file; once a change
has been stable for about a second it rolls the group: for each worker in turn it starts one
of the new program, waits until that one accepts, then retires (SIGTERM, drain) an old one,
so `processes` workers accept throughout (SG1021 roll begins, SG1022 roll done). A new
program that exits at startup or does not accept within `startup-timeout` stops the roll
(SG1023) and the old workers keep serving. SIGHUP to the supervisor, and a change of the
group's `restart-file=`, roll the group too.

Versions are distinct copies of the fixture program (ProgramVersions in sg_harness.py):
its /version page answers the device and inode of the file its worker runs, so each answer
names the version that served it. Every test runs under a load of 20 keep-alive clients
and asserts that none of their requests failed (status >= 500 or a connection error)."""

from __future__ import annotations

import os
import re
import signal
import time

from sg_harness import (BackgroundLoad, LogWatcher, ProgramVersions, ScoreboardSampler,
                        build_scoreboard_dump, group_workers, note, pid_alive, proc_environ, proc_exe,
                        wait_until)

ROLL_BEGINS = re.compile(r"SG1021: rolling restart of")
ROLL_DONE = re.compile(r"SG1022")
ROLL_FAILED = re.compile(r"SG1023")
# Lines that would mean a request or a worker was lost (as test_recycling.py's).
TROUBLE = re.compile(r"SG1007|SG1014|SG1015|SG1104|SG050[2-6]|SG0510|SG041[3-6]")
LOAD_CLIENTS = 20
# The last old worker is sent SIGTERM as SG1022 is logged; its accept thread acts on it within
# milliseconds (closing its idle connections with a notice), and a request that reached one of
# its connections before that is still its own to answer.
DRAIN_NOTICE = 0.1


def _site(s, *options: str) -> str:
    return "\n".join([
        s.daemon("site", *options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def _trouble(log: LogWatcher) -> list[str]:
    return [line for _, line in log.find(TROUBLE)]


class VersionAnswers:
    """What the load's clients were answered on /version: (client, sent, version) in order,
    version as ProgramVersions names it (None: an answer no installed file gives)."""

    def __init__(self, versions: ProgramVersions):
        self._versions = versions
        self.answers: list[tuple[int, float, int | str | None]] = []
        self.unknown: list[str] = []
        self.slowest = 0.0

    def observe(self, client: int, sent: float, response) -> None:
        self.slowest = max(self.slowest, time.monotonic() - sent)
        if response.status_code != 200:
            return
        version = self._versions.version_of(response.text)
        if version is None:
            self.unknown.append(response.text[:100])
        self.answers.append((client, sent, version))   # list.append: atomic under the GIL

    def served_since(self, since: float) -> set:
        return {v for _, sent, v in list(self.answers) if sent >= since}

    def back_steps(self) -> int:
        """Answers older than one the same client had before (during a roll both run)."""
        newest: dict[int, int] = {}
        steps = 0
        for client, _, version in list(self.answers):
            if not isinstance(version, int):
                continue
            if version < newest.get(client, version):
                steps += 1
            newest[client] = max(newest.get(client, version), version)
        return steps

    def stale_after_roll(self, done: dict[int, float]) -> list[tuple[int, float, int | str | None]]:
        """Answers of a version older than one whose roll was done (SG1022 seen) more than
        `DRAIN_NOTICE` before the request was sent."""
        return [(client, sent, v) for client, sent, v in list(self.answers)
                if isinstance(v, int) and any(w > v and at + DRAIN_NOTICE < sent for w, at in done.items())]


def test_program_replaced_five_times_under_load_rolls_with_no_failed_request(apache, tmp_path):
    dump = build_scoreboard_dump(str(tmp_path))
    srv = apache(lambda s: _site(s, "processes=3", "threads=10"))
    srv.wait_workers("site", 3)
    supervisor = srv.supervisors()["site"]
    versions = ProgramVersions(srv, srv.bin, srv.artifacts.fixture)
    seen = VersionAnswers(versions)
    # mv, cp -f, install, a write in pieces (a linker's), mv again.
    methods = ["rename", "copy", "install", "pieces", "rename"]
    replaced: dict[int, float] = {}
    done: dict[int, float] = {}
    retired: dict[int, float] = {}
    since = srv.log_offset()
    with (LogWatcher(srv, since) as log,
          ScoreboardSampler(srv, "site", dump, minimum=3) as board,
          BackgroundLoad(srv.port, "/version", concurrency=LOAD_CLIENTS, deadline=120,
                         observe=seen.observe) as load):
        started = time.monotonic()
        wait_until(lambda: len(seen.answers) >= 100, 15, message="the load answered")
        for version, method in enumerate(methods, start=1):
            # One replacement about every 5.5 s of the 30 s load (after the last roll ended).
            pause = started + 1 + 5.5 * (version - 1) - time.monotonic()
            if pause > 0:
                time.sleep(pause)   # pacing the deploys over the load, not waiting for anything
            old = set(group_workers(supervisor))
            versions.install(version, method)
            replaced[version] = time.monotonic()
            done[version] = log.wait_for(ROLL_DONE, count=version, timeout=20)[-1][0]
            wait_until(lambda: not any(pid_alive(p) for p in old), 15,
                       message=f"the workers of version {version - 1} gone")
            retired[version] = time.monotonic()
        remaining = started + 30 - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)   # the load's length
    result = load.result
    begins = [line for _, line in log.find(ROLL_BEGINS)]
    rolls = [f"v{v} by {methods[v - 1]}: roll done {done[v] - replaced[v]:.2f}s, "
             f"old workers gone {retired[v] - replaced[v]:.2f}s" for v in replaced]
    note(f"reload under load (processes=3, {LOAD_CLIENTS} clients on /version): {result.summary()}; "
         f"slowest answer {seen.slowest:.3f}s; {seen.back_steps()} answers older than one the same client "
         f"had (during rolls); {board.summary()}")
    note("reload: time from a replaced program to its roll done (SG1022) / old workers gone: " + "; ".join(rolls))

    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests > 0 and result.statuses == {200: result.requests}, result.summary()
    assert seen.unknown == [], f"answers of no installed file: {seen.unknown[:5]}"
    stale = seen.stale_after_roll(done)
    assert stale == [], f"{len(stale)} answers of an old version after the roll to a newer one ended: {stale[:5]}"
    # Each version was served, and at the end only the last.
    served = {v for _, _, v in seen.answers}
    assert served >= set(range(6)), f"versions served: {served}"
    assert seen.served_since(done[5] + DRAIN_NOTICE) == {5}
    assert set(versions.version_of(srv.get("/version").text) for _ in range(10)) == {5}
    # Never fewer than processes workers accepting.
    assert board.unreadable == 0, board.summary()
    assert len(board.samples) >= 200, board.summary()
    assert board.low() == [], f"{board.summary()}: {board.low()[:5]}"
    # One roll per replacement, each naming the program; no failed roll, nothing lost.
    assert len(begins) == 5 and len(log.find(ROLL_DONE)) == 5, begins
    assert all(srv.bin in line for line in begins), begins
    assert log.find(ROLL_FAILED) == []
    assert _trouble(log) == []
    assert len(srv.workers("site")) == 3


def test_a_build_that_cannot_start_leaves_the_old_one_serving(apache):
    srv = apache(lambda s: _site(s, "processes=2", "threads=10", "startup-timeout=3"))
    first = set(srv.wait_workers("site", 2))
    supervisor = srv.supervisors()["site"]
    versions = ProgramVersions(srv, srv.bin, srv.artifacts.fixture)
    seen = VersionAnswers(versions)
    since = srv.log_offset()
    with (LogWatcher(srv, since) as log,
          BackgroundLoad(srv.port, "/version", concurrency=LOAD_CLIENTS, deadline=120,
                         observe=seen.observe) as load):
        wait_until(lambda: len(seen.answers) >= 100, 15, message="the load answered")

        # A build that exits at once.
        versions.install_script("exits", "#!/bin/sh\nexit 3\n")
        exits_at = time.monotonic()
        exited = log.wait_for(ROLL_FAILED, count=1, timeout=20)[0]
        # Not tried again while the file stays as it is: nothing to wait for, so a window of
        # more than a poll and a stable second.
        time.sleep(2.5)
        exited_retries = [line for _, line in log.find(ROLL_BEGINS)]
        # A build that never accepts: startup-timeout (3 s) ends it.
        versions.install_script("sleeps", "#!/bin/sh\nexec sleep 60\n")
        sleeps_at = time.monotonic()
        timed_out = log.wait_for(ROLL_FAILED, count=2, timeout=25)[1]
        sleepers = [p for p in srv.related_processes() if os.path.basename(proc_exe(p)) == "sleep"]
        still_first = set(group_workers(supervisor))

        # A good build rolls in.
        versions.install(1, "rename")
        good_at = time.monotonic()
        done = log.wait_for(ROLL_DONE, count=1, timeout=20)[0]
        wait_until(lambda: seen.served_since(done[0] + DRAIN_NOTICE) == {1}, 10, message="version 1 answered")
    result = load.result
    note(f"failed builds under load: {result.summary()}, slowest answer {seen.slowest:.3f}s; exit 3 reported after {exited[0] - exits_at:.2f}s, "
         f"the sleeper after {timed_out[0] - sleeps_at:.2f}s, the good build rolled in {done[0] - good_at:.2f}s")
    note(f"  {exited[1].strip()}")
    note(f"  {timed_out[1].strip()}")

    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests > 0 and result.statuses == {200: result.requests}, result.summary()
    assert seen.unknown == [], seen.unknown[:5]
    # The old version served until the good build's roll.
    assert {v for _, sent, v in seen.answers if sent < good_at} == {0}
    assert still_first == first, "the old workers kept serving"
    # One line each, naming the program and why.
    assert srv.bin in exited[1] and re.search(r"\b(exit(ed)?|status)\b[^0-9]*\b3\b", exited[1]), exited[1]
    assert srv.bin in timed_out[1] and "startup-timeout" in timed_out[1], timed_out[1]
    assert len(exited_retries) == 1, f"the failed build was tried again: {exited_retries}"
    # Three rolls began (two failed, the good one done); neither failed build was tried again.
    assert len(log.find(ROLL_BEGINS)) == 3 and len(log.find(ROLL_FAILED)) == 2, log.find(ROLL_BEGINS)
    assert sleepers == [], f"the build that never accepted still runs: {sleepers}"
    assert _trouble(log) == []
    wait_until(lambda: len(srv.workers("site")) == 2 and not set(srv.workers("site")) & first, 15,
               message="two workers of the good build")


def _rolls_under_load(srv, log: LogWatcher, trigger, rolls: int = 1) -> None:
    """Runs trigger(roll) `rolls` times under a /hello load, each time waiting for the roll to
    end with none of the workers before it left; asserts no request failed. Each roll comes
    after 1,000 answers more, and the load goes on for 1,000 after the last."""
    answered = [0]
    slowest = [0.0]

    def count(client: int, sent: float, response) -> None:
        answered[0] += 1   # a lost increment now and then does not matter
        slowest[0] = max(slowest[0], time.monotonic() - sent)

    def answers(more: int) -> None:
        goal = answered[0] + more
        wait_until(lambda: answered[0] >= goal, 30, message=f"{more} answers more")
    supervisor = srv.supervisors()["site"]

    def workers() -> set[int]:
        return set(group_workers(supervisor))
    with BackgroundLoad(srv.port, "/hello", concurrency=LOAD_CLIENTS, deadline=120, observe=count) as load:
        for roll in range(1, rolls + 1):
            answers(1000)
            before = workers()
            assert len(before) == 2, before
            trigger(roll)
            started = time.monotonic()
            log.wait_for(ROLL_DONE, count=roll, timeout=20)
            wait_until(lambda: not any(pid_alive(p) for p in before), 15, interval=0.02,
                       message=f"roll {roll}: the old workers gone")
            gone = time.monotonic()
            wait_until(lambda: len(workers()) == 2 and not workers() & before, 15,
                       message=f"roll {roll}: two new workers")
            note(f"  roll {roll}: done {log.find(ROLL_DONE)[roll - 1][0] - started:.2f}s after the trigger, "
                 f"the old workers gone after {gone - started:.2f}s")
        answers(1000)
    result = load.result
    note(f"  under load: {result.summary()}, slowest answer {slowest[0]:.3f}s")
    assert not result.timed_out, result.summary()
    assert result.failures == [], f"{result.summary()}: {result.failures[:10]}"
    assert result.requests > 0 and result.statuses == {200: result.requests}, result.summary()
    assert len(log.find(ROLL_BEGINS)) == rolls and log.find(ROLL_FAILED) == []
    assert _trouble(log) == []


def test_sighup_to_the_supervisor_rolls_the_group(apache):
    srv = apache(lambda s: _site(s, "processes=2", "threads=10"))
    srv.wait_workers("site", 2)
    supervisor = srv.supervisors()["site"]
    note("SIGHUP to the supervisor:")
    with LogWatcher(srv, srv.log_offset()) as log:
        _rolls_under_load(srv, log, lambda _: os.kill(supervisor, signal.SIGHUP), rolls=2)
    assert srv.supervisors()["site"] == supervisor, "the supervisor stays"
    assert all(re.search(r"SIGHUP|signal", line) for _, line in log.find(ROLL_BEGINS)), log.find(ROLL_BEGINS)


def test_restart_file_appearing_or_touched_rolls_the_group(apache):
    restart_file: list[str] = []

    def body(s) -> str:
        restart_file.append(os.path.join(s.root, "restart.txt"))
        return _site(s, "processes=2", "threads=10", f"restart-file={restart_file[0]}")
    srv = apache(body)
    srv.wait_workers("site", 2)
    path = restart_file[0]

    def touch(roll: int) -> None:
        if roll == 1:
            assert not os.path.exists(path)
            with open(path, "w"):   # it appears
                pass
        else:
            now = time.time_ns()
            os.utime(path, ns=(now, now))   # its mtime changes
    note("restart-file:")
    with LogWatcher(srv, srv.log_offset()) as log:
        _rolls_under_load(srv, log, touch, rolls=2)
    assert all(re.search(r"restart.file", line) for _, line in log.find(ROLL_BEGINS)), log.find(ROLL_BEGINS)


def test_reload_off_leaves_a_replaced_program_alone(apache):
    srv = apache(lambda s: _site(s, "processes=2", "threads=10", "reload=off"))
    first = set(srv.wait_workers("site", 2))
    assert proc_environ(srv.supervisors()["site"]).get("SWIFT_GATEWAY_RELOAD") == "0"
    versions = ProgramVersions(srv, srv.bin, srv.artifacts.fixture)
    since = srv.log_offset()
    with LogWatcher(srv, since) as log, BackgroundLoad(srv.port, "/hello", concurrency=4) as load:
        versions.install(1, "rename")
        # Nothing to wait for: a roll would begin within about 1.5 s (poll, then 1 s stable).
        time.sleep(3)
    assert load.result.failures == [], load.result.summary()
    assert log.find(ROLL_BEGINS) == []
    assert set(srv.workers("site")) == first
    assert versions.version_of(srv.get("/version").text) == 0
