"""One make bench session: every configuration started and checked, the warm-up, the rounds,
the memory runs, everything stopped again, and the report printed and written."""

from __future__ import annotations

import math
import os
import signal
import sys
import time

import requests
import sg_harness as H

from lib.base import T0, BenchError, log
from lib.configurations import CONFIG_CLASSES, StandaloneConfig, find_artifacts, read_rss, verify
from lib.cpu import ForeignCpu, busy_sample
from lib.load import hello_until, measure, run_wrk
from lib.report import Report
from lib.workloads import GATEWAY_LIKE, WORKLOADS


def load_avg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def start_all(args, artifacts, report) -> list[str]:
    """Starts and checks every configuration asked for; returns the names of those that run."""
    for name in args.only:
        cfg = CONFIG_CLASSES[name](artifacts)
        report.configs[name] = cfg
        log(f"starting {name}")
        try:
            cfg.start()
            verify(cfg)
            log(f"{name}: ready on {H.HOST}:{cfg.port}, answers verified")
        except (BenchError, H.ServerStartError, AssertionError, OSError, requests.RequestException) as e:
            report.failed[name] = f"{type(e).__name__}: {e}" if not isinstance(e, BenchError) else str(e)
            log(f"{name}: FAILED: {report.failed[name]}")
            diag = cfg.diagnostics()
            if diag:
                log(diag)
            report.problems.append(f"{name} did not start or answered wrongly: "
                                   + report.failed[name].replace("\n", " ⏎ ")[:1500])
    live = [n for n in args.only if n not in report.failed]
    if not live:
        raise BenchError("no configuration started")
    return live


def run_rounds(args, live: list[str], report) -> None:
    """The warm-up (not recorded), then every workload against every configuration, round by
    round, the configurations' order rotating from round to round."""
    configs = report.configs
    for name in live:
        log(f"warm-up {name} (2 s hello, 50 connections)")
        try:
            run_wrk(configs[name].url(configs[name].hello_path), 50, 2, "report.lua")
        except BenchError as e:
            log(f"warm-up {name}: {e}")
    foreign = ForeignCpu(configs)
    wls = [w for w in WORKLOADS if w.key in args.workloads]
    total_runs = sum(len([c for c in w.configs if c in live]) for w in wls) * args.rounds
    done_runs = 0
    for rnd in range(1, args.rounds + 1):
        order = live[(rnd - 1) % len(live):] + live[:(rnd - 1) % len(live)]
        for wl in wls:
            for name in order:
                if name not in wl.configs:
                    continue
                done_runs += 1
                run = measure(configs[name], wl, rnd, args.duration, foreign)
                report.runs.append(run)
                where = f"[round {rnd}/{args.rounds} {done_runs}/{total_runs}] {wl.title}, {name}"
                if run.failure:
                    log(f"{where}: FAILED: {run.failure}")
                    report.problems.append(f"round {rnd}, {wl.title}, {name}: {run.failure}")
                else:
                    log(f"{where}: {run.rps:,.0f} req/s, {run.mibps:,.1f} MiB/s, p50 {run.p50_ms:.2f} ms, "
                        f"p99 {run.p99_ms:.2f} ms"
                        + (f" (other processes used {run.foreign_cpu:.0f}% of the CPUs)"
                           if run.foreign_cpu >= 5 else ""))
                time.sleep(0.3)


def memory_runs(args, live: list[str], report) -> None:
    """Hello at 50 connections until --memory-requests more were served, then RSS again."""
    report.rss["more"] = {}
    for name in [n for n in GATEWAY_LIKE if n in live]:
        cfg = report.configs[name]
        rate = report.stat("hello-50", name, "rps")
        log(f"memory run {name}: hello at 50 connections until {args.memory_requests:,} requests "
            f"(at most {args.memory_max_seconds:.0f} s)")
        marks = cfg.log_marks()
        result = hello_until(cfg, args.memory_requests, args.memory_max_seconds, 0.0 if math.isnan(rate) else rate)
        report.mem_log_errors[name] = cfg.new_error_lines(marks)
        report.memruns[name] = result
        if result[2]:
            report.problems.append(f"memory run {name}: {result[2]}")
        log(f"memory run {name}: {result[0]:,} requests in {result[1]:.1f} s {result[2]}")
        time.sleep(2)
        report.rss["more"][name] = read_rss(cfg)


def measure_all(args, artifacts, report) -> None:
    live = start_all(args, artifacts, report)
    time.sleep(1)
    report.rss["idle"] = {n: read_rss(report.configs[n]) for n in live if n in GATEWAY_LIKE}
    run_rounds(args, live, report)
    time.sleep(2)
    report.rss["after"] = {n: read_rss(report.configs[n]) for n in live if n in GATEWAY_LIKE}
    memory_runs(args, live, report)
    for name in live:
        problem = report.configs[name].alive_problem()
        if problem:
            report.problems.append(problem)


def run(args) -> int:
    """The whole session; the exit status (README.md, "Exit status")."""
    try:
        artifacts = find_artifacts()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    StandaloneConfig.user = args.standalone_user

    report = Report(args, {}, {})
    report.load_before = load_avg()
    report.busy_before = busy_sample(report.configs)
    log(f"before the start, other processes used {report.busy_before}")
    interrupted = False
    try:
        measure_all(args, artifacts, report)
    except KeyboardInterrupt as e:
        interrupted = True
        log(f"interrupted ({e or 'Ctrl-C'}): stopping everything")
    except BenchError as e:
        report.problems.append(str(e))
        log(f"error: {e}")
    except Exception as e:  # noqa: BLE001 - reported, then everything is stopped
        import traceback
        traceback.print_exc()
        report.problems.append(f"unexpected {type(e).__name__}: {e}")
    finally:
        # Stop everything started here (by pid), whatever happened, undisturbed by signals.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            for name in reversed(list(report.configs)):
                log(f"stopping {name}")
                report.notes += report.configs[name].shut_down()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    if interrupted:
        return 130

    report.load_after = load_avg()
    elapsed = time.monotonic() - T0
    text = report.render(elapsed)
    sys.stdout.write(text)
    sys.stdout.flush()
    try:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
        log(f"written to {args.output}; total {elapsed / 60:.1f} min")
    except OSError as e:
        log(f"could not write {args.output}: {e}")
        return 1
    return 1 if report.problems else 0
