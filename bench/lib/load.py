"""The load: bounded wrk runs, one measured run of a workload against a
configuration, and the memory run (hello until enough requests were served)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field

from lib.base import BENCH, MIB, BenchError
from lib.configurations import Config
from lib.cpu import ForeignCpu, cpu_per_request, process_ticks
from lib.workloads import Workload


@dataclass
class Run:
    workload: str
    config: str
    round: int
    connections: int
    seconds: float = 0.0
    requests: int = 0
    bytes_read: int = 0
    errors: dict = field(default_factory=dict)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    upload_bytes: int = 0
    failure: str = ""
    foreign_cpu: float = 0.0          # % of the machine used by other processes during the run
    foreign_top: list = field(default_factory=list)
    log_errors: list = field(default_factory=list)   # error-log lines (level error+) during the run
    # CPU time per request (user + system, µs) of Apache's children and of the application's
    # processes: steadier than req/s on a shared machine, and it says which side costs what.
    cpu_apache_us: float = math.nan
    cpu_app_us: float = math.nan

    @property
    def cpu_total_us(self) -> float:
        return self.cpu_apache_us + self.cpu_app_us

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mibps(self) -> float:
        """Payload throughput: bytes received, or request bodies sent for uploads."""
        if not self.seconds:
            return 0.0
        moved = self.requests * self.upload_bytes if self.upload_bytes else self.bytes_read
        return moved / self.seconds / MIB

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def start_wrk(url: str, connections: int, seconds: float, script: str,
              env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, list[str], float]:
    """Starts one bounded wrk run; `finish_wrk` waits for it (two may run at once)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(round(seconds)))}s", "--latency",
           "--timeout", "10s", "-s", os.path.join(BENCH, script), url]
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    return proc, cmd, seconds


def finish_wrk(started: tuple[subprocess.Popen, list[str], float]) -> dict:
    """The BENCH_JSON summary of a run `start_wrk` started (raises BenchError); kills an overrun."""
    proc, cmd, seconds = started
    try:
        out, err = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError(f"wrk did not finish within {seconds + 30:.0f} s and was killed: {' '.join(cmd)}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk gave no summary (rc={proc.returncode}): {' '.join(cmd)}\n"
                     f"stdout:\n{out[-2000:]}\nstderr:\n{err[-2000:]}")


def stop_wrk(started: tuple[subprocess.Popen, list[str], float]) -> None:
    """Kills a run `start_wrk` started if it still runs (a failure elsewhere leaves no wrk behind)."""
    proc = started[0]
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def run_wrk(url: str, connections: int, seconds: float, script: str,
            env_extra: dict[str, str] | None = None) -> dict:
    """One bounded wrk run; returns the BENCH_JSON summary (raises BenchError)."""
    return finish_wrk(start_wrk(url, connections, seconds, script, env_extra))


def wrk_target(cfg: Config, wl: Workload) -> tuple[str, str, dict[str, str] | None]:
    """(URL, wrk script, its environment) of a workload against a configuration."""
    if wl.kind == "hello":
        return cfg.url(cfg.hello_path), "report.lua", None
    if wl.kind == "download":
        return cfg.url(cfg.download_path), "report.lua", None
    return cfg.url(cfg.upload_path), "upload.lua", {"BENCH_UPLOAD_BYTES": str(wl.body_bytes)}


def measure(cfg: Config, wl: Workload, rnd: int, seconds: float, foreign: ForeignCpu) -> Run:
    run = Run(wl.key, cfg.name, rnd, wl.connections)
    url, script, env = wrk_target(cfg, wl)
    if wl.kind == "upload":
        run.upload_bytes = wl.body_bytes
    marks = cfg.log_marks()
    ticks = process_ticks(cfg)
    try:
        with foreign:
            s = run_wrk(url, wl.connections, seconds, script, env)
        run.foreign_cpu, run.foreign_top = foreign.percent, foreign.top
    except BenchError as e:
        run.failure = str(e)
        return run
    finally:
        run.log_errors = cfg.new_error_lines(marks)
    run.seconds = s["duration_us"] / 1e6
    run.requests = s["requests"]
    run.bytes_read = s["bytes"]
    run.errors = {k: v for k, v in s["errors"].items() if v}
    run.p50_ms = s["latency_us"]["p50"] / 1000
    run.p99_ms = s["latency_us"]["p99"] / 1000
    if run.requests:
        run.cpu_apache_us, run.cpu_app_us = cpu_per_request(ticks, process_ticks(cfg), run.requests)
    if run.errors:
        run.failure = f"wrk reported errors {run.errors} in {run.requests} requests"
    elif run.requests == 0:
        run.failure = "no request completed"
    problem = cfg.alive_problem()
    if problem:
        run.failure = (run.failure + "; " if run.failure else "") + problem
    return run


def hello_until(cfg: Config, target: int, max_seconds: float, rate_hint: float) -> tuple[int, float, str]:
    """hello at 50 connections until >= target requests (bounded): (requests, seconds, failure)."""
    total, spent, failure = 0, 0.0, ""
    errors: dict[str, int] = {}
    deadline = time.monotonic() + max_seconds
    rate = rate_hint
    while total < target:
        remaining = deadline - time.monotonic()
        if remaining < 1:
            failure = f"only {total} requests within {max_seconds:.0f} s"
            break
        # unknown rate: a 5 s probe first
        want = math.ceil((target - total) / rate * 1.15) + 1 if rate > 0 else 5
        seconds = max(2, min(want, int(remaining)))
        try:
            s = run_wrk(cfg.url(cfg.hello_path), 50, seconds, "report.lua")
        except BenchError as e:
            failure = str(e)
            break
        for k, v in s["errors"].items():
            if v:
                errors[k] = errors.get(k, 0) + v
        total += s["requests"]
        spent += s["duration_us"] / 1e6
        if s["requests"] and s["duration_us"]:
            rate = s["requests"] / (s["duration_us"] / 1e6)
        elif not s["requests"]:
            failure = "no request completed"
            break
    if errors:
        failure = (failure + "; " if failure else "") + f"wrk reported errors {errors}"
    return total, spent, failure
