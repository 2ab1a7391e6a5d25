#!/usr/bin/env python3
"""Two or more builds of the worker program side by side: alternating load runs.

    python3 bench/compare_builds.py [--workload hello-50] [--pairs 6] [--duration 5] \\
        before=/tmp/bins/GatewayFixture.old after=/tmp/bins/GatewayFixture.new
    python3 bench/compare_builds.py --workload upload \
        old=/tmp/bins/GatewayFixture,/tmp/mods/old.so new=/tmp/bins/GatewayFixture,/tmp/mods/new.so

Each LABEL=PROGRAM[,MODULE] becomes the bench's `gateway` configuration (lib/configurations.py,
`processes=2 threads=15`) with that program as its group's program (and that build of
mod_swift_gateway.so, by default $SG_MODULE or the tree's); all start at once,
then the load runs alternate between them, the order reversed every round, so that a
machine whose speed drifts (a shared VM moves by ±10 % from one minute to the next) favours
none. Prints each run and the medians of req/s and of CPU per request (Apache's children,
the application's processes). A PROGRAM and every folder above it must be readable and
executable by www-data (copy builds out of a 0700 home first). Runs as root, as make bench.
Nothing is asserted: this is how a change to the worker is measured before it lands.

--interleaved (two builds, hello workloads): both builds run as two groups of one Apache,
`/a` and `/b`, and one wrk run alternates its requests between them, so both meet the same
machine at the same moment; each run gives the workers' CPU per request of each build
(Apache's is shared and not split). Then Apache is started again with the groups swapped,
for as many runs, and the ratio is the geometric mean of the two halves' medians: what
favours a position (which group, which path first) cancels. On a VM whose speed drifts
this resolves a difference of about 2 %, where alternating runs resolve about 5 %.

--concurrent (two builds, any workload): for builds of the module, which one Apache cannot
load twice. Each build is the bench's `gateway` as its own Apache, both up at once, and each
run loads both at the same moment with a wrk of its own (half the workload's connections
each; which wrk starts first alternates). Each run gives each build's CPU per request of
Apache's children and of its workers. Then both are started again the other way round; the
ratio is the geometric mean of the two halves' ratios of medians (a check of one build
against itself showed the Apache started second 1.5 % cheaper).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.base import is_root, raise_on_signals  # noqa: E402
from lib.configurations import GatewayConfig, default_module, verify  # noqa: E402
from lib.cpu import CLK_TCK, ForeignCpu, cpu_per_request, pid_ticks, process_ticks  # noqa: E402
from lib.load import finish_wrk, measure, run_wrk, start_wrk, stop_wrk, wrk_target  # noqa: E402
from lib.workloads import WORKLOAD  # noqa: E402
import sg_harness as H  # noqa: E402 (lib puts it on the path)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs="+", metavar="LABEL=PROGRAM[,MODULE]")
    parser.add_argument("--workload", default="hello-50", choices=list(WORKLOAD))
    parser.add_argument("--pairs", type=int, default=6, help="rounds over all builds (default 6)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per load run (default 5)")
    parser.add_argument("--interleaved", action="store_true",
                        help="two builds as two groups of one Apache, loaded by the same wrk run (hello only)")
    parser.add_argument("--concurrent", action="store_true",
                        help="two builds (of the module too) as two Apaches loaded at the same moment")
    args = parser.parse_args()
    builds = []
    for item in args.builds:
        label, _, paths = item.partition("=")
        program, _, module = paths.partition(",")
        if not label or not os.path.isabs(program) or not os.access(program, os.X_OK):
            parser.error(f"{item!r}: expected LABEL=/absolute/path/of/an/executable")
        if module and not (os.path.isabs(module) and os.path.isfile(module)):
            parser.error(f"{item!r}: expected the module as an absolute path after the comma")
        builds.append((label, program, module or None))
    if len({label for label, _, _ in builds}) != len(builds):
        parser.error("labels must differ")
    if args.interleaved and args.concurrent:
        parser.error("--interleaved or --concurrent, not both")
    if args.concurrent and len(builds) != 2:
        parser.error("--concurrent compares two builds")
    if args.interleaved:
        if len(builds) != 2 or not args.workload.startswith("hello"):
            parser.error("--interleaved compares two builds on a hello workload")
        if builds[0][2] != builds[1][2]:
            parser.error("--interleaved runs one Apache: both builds use the same module")
    args.builds = builds
    return args


class InterleavedConfig(GatewayConfig):
    """Two worker programs as the groups `a` and `b` of one Apache, mounted at `/a` and `/b`."""
    name = "interleaved"
    groups = ("a", "b")

    def __init__(self, artifacts, programs: tuple[str, str]):
        super().__init__(artifacts)
        self.programs = programs

    def start(self) -> None:
        self.srv = H.ApacheServer(self.artifacts, name="bench-interleaved")
        lines = []
        for group, program in zip(self.groups, self.programs):
            lines += [self.srv.daemon(group, "processes=2", f"threads={self.threads}"),
                      f"SwiftScriptAlias /{group} {program} process-group={group}"]
        self.srv.configure(self._apache_body(*lines, gateway=True))
        self.srv.start(ready_path=f"/{self.groups[0]}/hello", expect_gateway=True)
        for group in self.groups:
            self.srv.wait_workers(group, 2)
        self.port = self.srv.port

    def worker_ticks(self, group: str) -> int:
        """utime + stime (clock ticks) of the group's workers now."""
        return sum(pid_ticks(pid) or 0 for pid in self.srv.workers(group))


def interleaved(args: argparse.Namespace, module: str, workload) -> int:
    """Both halves (the builds in one order, then swapped); prints runs, medians and the ratio."""
    (first, first_program, _), (second, second_program, _) = args.builds
    paths = ",".join(f"/{group}/hello" for group in InterleavedConfig.groups)
    ratios: list[float] = []     # second's µs over first's, per half
    per_build: dict[str, list[float]] = {first: [], second: []}
    failed = False
    for half, order in enumerate(((first, first_program, second, second_program),
                                  (second, second_program, first, first_program))):
        label_a, program_a, label_b, program_b = order
        cfg = InterleavedConfig(H.Artifacts(module=module, fixture=program_a), (program_a, program_b))
        try:
            cfg.start()
            run_wrk(cfg.url("/"), workload.connections, 2, "interleave.lua", {"BENCH_PATHS": paths})
            us: dict[str, list[float]] = {label_a: [], label_b: []}
            for rnd in range(args.pairs):
                before = {g: cfg.worker_ticks(g) for g in cfg.groups}
                summary = run_wrk(cfg.url("/"), workload.connections, args.duration, "interleave.lua",
                                  {"BENCH_PATHS": paths})
                after = {g: cfg.worker_ticks(g) for g in cfg.groups}
                errors = sum(summary["errors"].values())
                each = summary["requests"] / 2
                for group, label in zip(cfg.groups, (label_a, label_b)):
                    us[label].append((after[group] - before[group]) * 1e6 / CLK_TCK / each)
                failed |= errors > 0
                print(f"half {half + 1} run {rnd + 1}: {summary['requests'] * 1e6 / summary['duration_us']:,.0f} req/s "
                      f"in all; workers' CPU per request: {label_a} (/a) {us[label_a][-1]:.2f} µs, "
                      f"{label_b} (/b) {us[label_b][-1]:.2f} µs" + (f"; {errors} errors" if errors else ""),
                      flush=True)
            for label in us:
                per_build[label] += us[label]
            ratios.append(statistics.median(us[second]) / statistics.median(us[first]))
        finally:
            cfg.shut_down()
    ratio = math.sqrt(ratios[0] * ratios[1])
    print(f"\nworkers' CPU per request, medians over {2 * args.pairs} runs, {workload.title}: "
          f"{first} {statistics.median(per_build[first]):.2f} µs, {second} {statistics.median(per_build[second]):.2f} µs")
    print(f"{second} / {first}: {ratios[0]:.3f} with {first} at /a, {ratios[1]:.3f} with {second} at /a; "
          f"together {ratio:.3f} ({100 * (ratio - 1):+.1f} %)")
    return 1 if failed else 0


def concurrent_half(args: argparse.Namespace, builds, module: str, workload,
                    results: dict[str, dict[str, list[float]]], half: int) -> bool:
    """One half: the builds started in this order, each its own Apache; True if a run failed."""
    configs: list[tuple[str, GatewayConfig]] = []
    failed = False
    connections = max(1, workload.connections // 2)
    try:
        for label, program, own_module in builds:
            configs.append((label, started_build(label, program, own_module or module, workload)))
        for label, cfg in configs:
            url, script, env = wrk_target(cfg, workload)
            run_wrk(url, connections, 2, script, env)   # warm-up, not recorded
        for rnd in range(args.pairs):
            order = configs if rnd % 2 == 0 else list(reversed(configs))
            before = {label: process_ticks(cfg) for label, cfg in configs}
            started = []
            for label, cfg in order:
                url, script, env = wrk_target(cfg, workload)
                started.append((label, start_wrk(url, connections, args.duration, script, env)))
            try:
                summaries = {label: finish_wrk(run) for label, run in started}
            finally:    # a failed run leaves no wrk behind
                for _, run in started:
                    stop_wrk(run)
            after = {label: process_ticks(cfg) for label, cfg in configs}
            line = []
            for label, _ in configs:
                summary = summaries[label]
                apache, workers = cpu_per_request(before[label], after[label], summary["requests"])
                for key, value in (("Apache", apache), ("workers", workers), ("total", apache + workers)):
                    results[label][key].append(value)
                errors = sum(summary["errors"].values())
                failed |= errors > 0
                line.append(f"{label} {summary['requests'] * 1e6 / summary['duration_us']:,.0f} req/s, "
                            f"Apache {apache:.1f} + workers {workers:.1f} µs" + (f", {errors} errors" if errors else ""))
            print(f"half {half} run {rnd + 1} ({order[0][0]}'s wrk first): " + "; ".join(line), flush=True)
    finally:
        for _, cfg in configs:
            cfg.shut_down()
    return failed


def concurrent(args: argparse.Namespace, module: str, workload) -> int:
    """Both builds as Apaches of their own, loaded at once, then again started the other way
    round; prints runs, medians and the geometric mean of the two halves' ratios."""
    first, second = args.builds[0][0], args.builds[1][0]
    halves = []
    failed = False
    for half, builds in enumerate((args.builds, list(reversed(args.builds))), start=1):
        results = {label: {"Apache": [], "workers": [], "total": []} for label, _, _ in builds}
        failed |= concurrent_half(args, builds, module, workload, results, half)
        halves.append(results)
    print(f"\nCPU per request, {workload.title} ({max(1, workload.connections // 2)} per Apache), "
          f"medians of each half ({args.pairs} runs each; {first} started first, then {second}):")
    for key in ("Apache", "workers", "total"):
        ratios = [statistics.median(h[second][key]) / statistics.median(h[first][key]) for h in halves]
        ratio = math.sqrt(ratios[0] * ratios[1])
        print(f"  {key}: {first} " + " / ".join(f"{statistics.median(h[first][key]):.2f}" for h in halves)
              + f" µs, {second} " + " / ".join(f"{statistics.median(h[second][key]):.2f}" for h in halves)
              + f" µs; {second} / {first} {ratios[0]:.3f}, {ratios[1]:.3f}, together {ratio:.3f} ({100 * (ratio - 1):+.1f} %)")
    return 1 if failed else 0


def started_build(label: str, program: str, module: str, workload) -> GatewayConfig:
    """The bench's `gateway` with this build, started and checked."""
    cfg = GatewayConfig(H.Artifacts(module=module, fixture=program))
    cfg.name = label
    if workload.kind == "hello":    # only /hello checked: a program may serve no other page
        cfg.has_download = cfg.has_upload = False
    cfg.start()
    verify(cfg)
    return cfg


def alternating(args: argparse.Namespace, module: str, workload) -> int:
    """Each build its own Apache, the load runs alternating; prints runs and medians."""
    configs: dict[str, GatewayConfig] = {}
    runs: dict[str, list] = {}
    try:
        for label, program, own_module in args.builds:
            configs[label] = cfg = started_build(label, program, own_module or module, workload)
            run_wrk(cfg.url(cfg.hello_path), 50, 2, "report.lua")   # warm-up, not recorded
            runs[label] = []
        foreign = ForeignCpu(configs)
        for rnd in range(args.pairs):
            order = list(configs) if rnd % 2 == 0 else list(reversed(configs))
            for label in order:
                run = measure(configs[label], workload, rnd + 1, args.duration, foreign)
                runs[label].append(run)
                print(f"round {rnd + 1} {label}: {run.rps:,.0f} req/s, Apache {run.cpu_apache_us:.1f} µs, "
                      f"application {run.cpu_app_us:.1f} µs, total {run.cpu_total_us:.1f} µs"
                      + (f" (other processes {run.foreign_cpu:.0f}% of the CPUs)" if run.foreign_cpu >= 5 else "")
                      + (f" FAILED: {run.failure}" if run.failure else ""), flush=True)
                time.sleep(0.3)
        print(f"\nmedians over {args.pairs} rounds, {workload.title}:")
        for label, rs in runs.items():
            good = [r for r in rs if not r.failure] or rs
            print(f"  {label}: {statistics.median(r.rps for r in good):,.0f} req/s, "
                  f"Apache {statistics.median(r.cpu_apache_us for r in good):.1f} µs, "
                  f"application {statistics.median(r.cpu_app_us for r in good):.1f} µs, "
                  f"total {statistics.median(r.cpu_total_us for r in good):.1f} µs")
        return 1 if any(r.failure for rs in runs.values() for r in rs) else 0
    finally:
        for cfg in configs.values():
            cfg.shut_down()


def main() -> int:
    args = parse_args()
    if not is_root("compare_builds"):
        return 1
    raise_on_signals()
    module = default_module()
    workload = WORKLOAD[args.workload]
    try:
        if args.concurrent:
            return concurrent(args, module, workload)
        if args.interleaved:
            return interleaved(args, args.builds[0][2] or module, workload)
        return alternating(args, module, workload)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
