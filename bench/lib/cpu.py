"""CPU time from /proc: of the configurations' processes (per request), and of every process
that is not this benchmark's (other work on a shared machine)."""

from __future__ import annotations

import os
import time

import sg_harness as H

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """(name, the fields after it) of /proc/PID/stat (state first, utime at 11); None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return data[data.find("(") + 1:data.rfind(")")], data[data.rfind(")") + 2:].split()


def cpu_ticks() -> tuple[int, dict[int, tuple[int, int, str, bool]]]:
    """(machine-wide busy ticks, {pid: (utime+stime, cutime+cstime, name, is_kernel_thread)}).

    Busy = user+nice+system+steal of /proc/stat (irq and softirq left out: where they are
    also charged to the interrupted task, counting them would count our own traffic twice).
    Each entry also carries cutime+cstime (reaped children, e.g. our wrk runs) separately."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + (v[7] if len(v) > 7 else 0)
    out = {}
    for pid in H._all_pids():
        stat = proc_stat_fields(pid)
        if stat is None:
            continue
        name, rest = stat
        out[pid] = (int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]), name,
                    pid == 2 or rest[1] == "2")
    return busy, out


class ForeignCpu:
    """Share of the machine's CPU used, during a load run, by processes that are
    neither ours (this driver, wrk, the configurations' servers) nor kernel threads:
    the machine's busy time minus ours and the kernel threads', and at least what
    the other live processes used; processes that came and went in between are
    reported as "short-lived processes"."""

    def __init__(self, configs: dict):
        self.configs = configs
        self.percent = 0.0
        self.top: list[tuple[float, str]] = []

    def ours(self) -> set[int]:
        me = os.getpid()
        out = {me, *H.proc_descendants(me)}
        for cfg in self.configs.values():
            if cfg.srv is not None:
                out.update(cfg.srv.related_processes())
        return out

    def __enter__(self):
        self.ours_before = self.ours()
        self.busy0, self.before = cpu_ticks()
        self.t = time.monotonic()
        return self

    def __exit__(self, *exc):
        busy1, after = cpu_ticks()
        wall = time.monotonic() - self.t
        ours = self.ours_before | self.ours()
        named: dict[str, float] = {}
        ours_t = kernel_t = 0
        for pid, (ticks, cticks, name, kernel) in after.items():
            if pid in ours:
                # our processes' reaped children (wrk) are ours too
                ticks += cticks
                if pid in self.before:
                    ticks -= self.before[pid][1]
            delta = ticks - self.before[pid][0] if pid in self.before else ticks
            if delta <= 0:
                continue
            if pid in ours:
                ours_t += delta
            elif kernel:
                kernel_t += delta
            else:
                named[name] = named.get(name, 0.0) + delta
        named_t = sum(named.values())
        foreign_t = max(busy1 - self.busy0 - ours_t - kernel_t, named_t)
        if foreign_t - named_t > 0:
            named["short-lived processes"] = foreign_t - named_t
        cap = wall * (os.cpu_count() or 1) * CLK_TCK
        self.percent = 100.0 * foreign_t / cap if cap else 0.0
        self.top = sorted(((100.0 * t / cap, k) for k, t in named.items()), reverse=True)[:3]
        return False


def pid_ticks(pid: int) -> int | None:
    """utime + stime (clock ticks, all threads) of a process; None when it is gone."""
    stat = proc_stat_fields(pid)
    return None if stat is None else int(stat[1][11]) + int(stat[1][12])


def process_ticks(cfg) -> dict[str, int]:
    """label -> utime + stime (clock ticks, all threads) of this configuration's processes."""
    out = {}
    for label, pid in cfg.memory_pids().items():
        ticks = pid_ticks(pid)
        if ticks is not None:
            out[label] = ticks
    return out


def cpu_per_request(before: dict[str, int], after: dict[str, int], requests: int) -> tuple[float, float]:
    """(Apache's children, the application's processes) µs of CPU per request; a process
    that was not there at both ends does not count."""
    tick_us = 1e6 / CLK_TCK
    apache = app = 0
    for label in before.keys() & after.keys():
        used = after[label] - before[label]
        if label.startswith("apache child"):
            apache += used
        else:
            app += used
    return apache * tick_us / requests, app * tick_us / requests


def busy_sample(configs: dict, seconds: float = 2.0) -> str:
    """What other processes used of the CPUs over `seconds`, as a line of the report."""
    f = ForeignCpu(configs)
    with f:
        time.sleep(seconds)
    top = ", ".join(f"{name} {pct:.0f}%" for pct, name in f.top if pct >= 1)
    return f"{f.percent:.1f}% of the CPUs" + (f" ({top})" if top else "")
