#!/usr/bin/env python3
"""System calls and context switches per request, in Apache's children and in the application.

    python3 bench/count_syscalls.py [--configs static,gateway,gateway-floor] \\
        [--connections 10,50] [--duration 6]

Each configuration of `make bench` named (static or one of the gateway ones) is
started as its own private Apache; for each connection count one bounded wrk run loads its
hello page while `perf stat` counts, over the middle of the run, the system calls below and
the context switches of Apache's children and, separately, of the application's processes
(the group's workers). Counts are divided by the requests of that window (wrk's rate times
the window). Prints a markdown table; asserts nothing. Needs root and `perf` (Debian's
linux-perf); SG_MODULE and SG_FIXTURE as for make bench.

What to look for: under the event MPM a kept-alive request whose successor is not yet there
when httpd looks (`ap_check_pipeline`) goes back through the MPM's listener, two `epoll_ctl`
in Apache per such request, and a `futex` hand-off each way; so `epoll_ctl` per request runs
from 0 (the next request always waiting) to 2 (never).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.base import BenchError, is_root, log  # noqa: E402
from lib.configurations import CONFIG_CLASSES, Config, GatewayConfig, find_artifacts, verify  # noqa: E402
from lib.load import finish_wrk, run_wrk, start_wrk, stop_wrk  # noqa: E402

SYSCALLS = ("read", "write", "writev", "sendmsg", "recvfrom", "poll", "epoll_wait", "epoll_ctl",
            "futex", "accept4", "connect", "close")
EVENTS = [f"syscalls:sys_enter_{name}" for name in SYSCALLS] + ["context-switches"]
# make bench's configurations served by Apache with a hello page and nothing else to start
CONFIGS = {name: cls for name, cls in CONFIG_CLASSES.items() if name == "static" or name.startswith("gateway")}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="static,gateway,gateway-floor",
                        help=f"comma-separated, of {', '.join(CONFIGS)} (default static,gateway,gateway-floor)")
    parser.add_argument("--connections", default="10,50", help="comma-separated (default 10,50)")
    parser.add_argument("--duration", type=float, default=6, help="seconds per wrk run (default 6, at least 4)")
    args = parser.parse_args()
    args.configs = [name for name in args.configs.split(",") if name]
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")
    args.connections = [int(n) for n in args.connections.split(",") if n]
    if args.duration < 4:
        parser.error("--duration must be at least 4 seconds (1 s of ramp-up either side)")
    return args


def perf_stat(pids: list[int], seconds: float) -> subprocess.Popen:
    """`perf stat` on the pids (all their threads) for `seconds`; CSV on stderr."""
    return subprocess.Popen(
        ["perf", "stat", "-x", ",", "-e", ",".join(EVENTS), "-p", ",".join(map(str, pids)),
         "--", "sleep", f"{seconds:.1f}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def perf_counts(proc: subprocess.Popen) -> dict[str, float]:
    _, err = proc.communicate(timeout=60)
    counts = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2] in EVENTS:
            try:
                counts[fields[2]] = float(fields[0])
            except ValueError:      # "<not counted>", "<not supported>"
                pass
    if len(counts) != len(EVENTS):
        raise BenchError(f"perf stat counted {len(counts)} of {len(EVENTS)} events:\n{err[-2000:]}")
    return counts


def application_pids(cfg: Config) -> list[int]:
    return list(cfg.worker_pids().values()) if isinstance(cfg, GatewayConfig) else []


def count(cfg: Config, connections: int, duration: float) -> dict[str, dict[str, float]]:
    """Per-request counts of one run: {"Apache": {...}, "application": {...}}."""
    window = duration - 2
    started = start_wrk(cfg.url(cfg.hello_path), connections, duration, "report.lua")
    try:
        time.sleep(1)   # past wrk's connects: the window sees the steady state only
        groups = {"Apache": cfg.srv.apache_children(), "application": application_pids(cfg)}
        stats = {name: perf_stat(pids, window) for name, pids in groups.items() if pids}
        counts = {name: perf_counts(proc) for name, proc in stats.items()}
        summary = finish_wrk(started)
    finally:    # a failed count leaves no wrk behind
        stop_wrk(started)
    requests = summary["requests"] / summary["duration_us"] * 1e6 * window
    return {name: {event: value / requests for event, value in c.items()} for name, c in counts.items()}


def label(event: str) -> str:
    return event.removeprefix("syscalls:sys_enter_")


def main() -> int:
    args = parse_args()
    if not is_root("count_syscalls.py"):
        return 2
    if shutil.which("perf") is None:
        print("count_syscalls.py: perf is missing (apt-get install linux-perf)", file=sys.stderr)
        return 2
    artifacts = find_artifacts()
    columns: list[tuple[str, dict[str, float]]] = []
    for name in args.configs:
        cfg = CONFIGS[name](artifacts)
        try:
            cfg.start()
            verify(cfg)
            run_wrk(cfg.url(cfg.hello_path), max(args.connections), 2, "report.lua")   # warm-up
            for connections in args.connections:
                log(f"{name}, {connections} connections")
                for group, per_request in count(cfg, connections, args.duration).items():
                    columns.append((f"{name} {connections}: {group}", per_request))
        finally:
            cfg.shut_down()
    print("| per hello request | " + " | ".join(title for title, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for event in EVENTS:
        print(f"| {label(event)} | " + " | ".join(f"{c[event]:.2f}" for _, c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
