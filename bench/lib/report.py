"""The report make bench prints: markdown tables of the runs' medians, the targets, the
settings, problems, error-log lines and the other load on the machine (README.md, "Reading the
output")."""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import statistics
import subprocess

from lib.base import MIB, WWW_USER
from lib.configurations import APACHE_SETTINGS_TEXT, Config, StandaloneConfig
from lib.load import Run
from lib.workloads import GATEWAY_LIKE, WORKLOAD, WORKLOADS, Workload


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(v: float, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:,.{digits}f}"


def mib(b: int) -> str:
    return f"{b / MIB:.1f}"


def row(cells: list[str], width: int = 0) -> str:
    """A markdown table row; cells short of width are left empty."""
    return "| " + " | ".join(cells) + " |" + " |" * (width - len(cells))


def header(head: list[str]) -> list[str]:
    return [row(head), "|" + "---|" * len(head)]


class Report:
    def __init__(self, args, configs: dict[str, Config], failed: dict[str, str]):
        self.args = args
        self.configs = configs
        self.failed = failed          # config -> why it did not run
        self.runs: list[Run] = []
        self.rss: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}   # phase -> cfg -> label -> (pid, rss)
        self.memruns: dict[str, tuple[int, float, str]] = {}
        self.mem_log_errors: dict[str, list[str]] = {}
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.started = datetime.datetime.now().astimezone()
        self.load_before = self.load_after = self.busy_before = "?"

    def good_runs(self, wl: str, cfg: str) -> list[Run]:
        """Runs that produced measurements (wrk errors included; they are flagged)."""
        return [r for r in self.runs if r.workload == wl and r.config == cfg and r.seconds and r.requests]

    def label(self, wl: str, cfg: str) -> str:
        runs = self.good_runs(wl, cfg)
        text = cfg
        if len(runs) != self.args.rounds:
            text += f" ({len(runs)} of {self.args.rounds} rounds)"
        bad = [r for r in runs if r.failure]
        if bad:
            errors = sum(r.error_count for r in bad)
            total = sum(r.requests for r in runs)
            text += (f" ⚠ wrk errors in {len(bad)} of {len(runs)} rounds "
                     f"({errors:,} = {100.0 * errors / max(total, 1):.1f}% of requests)")
        return text

    def has_errors(self, wl: str, cfg: str) -> bool:
        return any(r.failure for r in self.good_runs(wl, cfg))

    def stat(self, wl: str, cfg: str, attr: str) -> float:
        return med([getattr(r, attr) for r in self.good_runs(wl, cfg)])

    def spread(self, wl: str, cfg: str, attr: str, digits: int = 0) -> str:
        vals = [getattr(r, attr) for r in self.good_runs(wl, cfg)]
        if not vals:
            return "—"
        return f"{fmt(min(vals), digits)}–{fmt(max(vals), digits)}"

    def _missing(self, wl: str, cfg: str) -> str:
        if cfg in self.failed:
            return "did not run: " + self.failed[cfg].splitlines()[0][:120]
        bad = [r for r in self.runs if r.workload == wl and r.config == cfg and r.failure]
        if bad:
            return "failed: " + bad[0].failure.splitlines()[0][:120]
        return "not measured"

    def table(self, wl: Workload, ref: str | None, ref_label: str, metric: str) -> list[str]:
        head = ["configuration", "req/s", "req/s min–max", "p50 ms", "p99 ms", "MiB/s",
                "MiB/s min–max", f"ratio to {ref_label}" if ref else "ratio"]
        lines = header(head)
        for cfg in wl.configs:
            if cfg not in self.configs:
                continue
            if not self.good_runs(wl.key, cfg):
                lines.append(row([cfg, self._missing(wl.key, cfg)], len(head)))
                continue
            ratio = "—"
            if ref:
                mine, theirs = self.stat(wl.key, cfg, metric), self.stat(wl.key, ref, metric)
                if theirs and not math.isnan(theirs) and not math.isnan(mine):
                    ratio = f"{mine / theirs:.2f}"
            lines.append(row([
                self.label(wl.key, cfg), fmt(self.stat(wl.key, cfg, "rps")), self.spread(wl.key, cfg, "rps"),
                fmt(self.stat(wl.key, cfg, "p50_ms"), 2), fmt(self.stat(wl.key, cfg, "p99_ms"), 2),
                fmt(self.stat(wl.key, cfg, "mibps"), 1), self.spread(wl.key, cfg, "mibps", 1), ratio]))
        return lines

    def by_connections_table(self, wls: list[Workload]) -> list[str]:
        head = ["configuration", "connections", "req/s", "req/s min–max", "p50 ms", "p99 ms",
                "ratio to static"]
        lines = header(head)
        for cfg in wls[0].configs:
            if cfg not in self.configs:
                continue
            for wl in wls:
                if not self.good_runs(wl.key, cfg):
                    lines.append(row([cfg, str(wl.connections), self._missing(wl.key, cfg)], len(head)))
                    continue
                mine, static = self.stat(wl.key, cfg, "rps"), self.stat(wl.key, "static", "rps")
                ratio = f"{mine / static:.2f}" if static and not math.isnan(static) else "—"
                lines.append(row([
                    self.label(wl.key, cfg), str(wl.connections), fmt(mine), self.spread(wl.key, cfg, "rps"),
                    fmt(self.stat(wl.key, cfg, "p50_ms"), 2), fmt(self.stat(wl.key, cfg, "p99_ms"), 2), ratio]))
        return lines

    def cpu_table(self, wls: list[Workload]) -> list[str]:
        lines = header(["configuration", "connections", "Apache µs", "application µs", "total µs",
                        "total µs min–max"])
        for cfg in wls[0].configs:
            if cfg not in self.configs:
                continue
            for wl in wls:
                if not self.good_runs(wl.key, cfg):
                    continue
                lines.append(row([
                    cfg, str(wl.connections), fmt(self.stat(wl.key, cfg, "cpu_apache_us")),
                    fmt(self.stat(wl.key, cfg, "cpu_app_us")), fmt(self.stat(wl.key, cfg, "cpu_total_us")),
                    self.spread(wl.key, cfg, "cpu_total_us")]))
        return lines

    def cpu_ratio_table(self, wls: list[Workload]) -> list[str]:
        """The hello ratios of the targets, from CPU per request instead of req/s."""
        anchors = [c for c in ("static", "proxy-fcgi", "wsgi-daemon") if c in self.configs]
        lines = header(["configuration", "connections", *[f"× {c}" for c in anchors]])
        for cfg in ("gateway", "gateway-hummingbird", "gateway-t30", "gateway-floor", "gateway-nio-floor"):
            if cfg not in self.configs:
                continue
            for wl in wls:
                mine = self.stat(wl.key, cfg, "cpu_total_us")
                if not self.good_runs(wl.key, cfg) or math.isnan(mine) or not mine:
                    continue
                theirs = [self.stat(wl.key, anchor, "cpu_total_us") for anchor in anchors]
                cells = ["—" if math.isnan(t) else f"{t / mine:.2f}" for t in theirs]
                lines.append(row([cfg, str(wl.connections), *cells]))
        return lines

    def memory_table(self) -> list[str]:
        head = ["configuration", "process", "pid", "idle MiB", "after the run MiB",
                f"after +{self.args.memory_requests:,} requests MiB", "growth over those requests MiB",
                "growth since idle MiB"]
        lines = header(head)
        for cfg in GATEWAY_LIKE:
            if cfg not in self.configs or cfg in self.failed:
                if cfg in self.failed or cfg in self.args.only:
                    lines.append(row([cfg, self._missing("", cfg)], len(head)))
                continue
            idle = self.rss.get("idle", {}).get(cfg, {})
            after = self.rss.get("after", {}).get(cfg, {})
            more = self.rss.get("more", {}).get(cfg, {})
            for label in list(dict.fromkeys([*idle, *after, *more])):
                cells = [cfg, label]
                pids = {x[label][0] for x in (idle, after, more) if label in x}
                cells.append("/".join(str(p) for p in sorted(pids)) + (" (replaced!)" if len(pids) > 1 else ""))
                vals = [x[label][1] if label in x else None for x in (idle, after, more)]
                cells += [mib(v) if v is not None else "—" for v in vals]
                for since in (vals[1], vals[0]):
                    cells.append(mib(vals[2] - since) if vals[2] is not None and since is not None else "—")
                lines.append(row(cells))
        return lines

    def memory_runs_lines(self) -> list[str]:
        return [f"- {cfg}: {n:,} hello requests in {secs:.1f} s at 50 connections"
                + (f" — **{failure}**" if failure else "") for cfg, (n, secs, failure) in self.memruns.items()]

    def targets(self) -> list[tuple[str, str, str, str]]:
        """(target, measured, ratio/value, verdict)"""
        out = []

        def ratio_target(label, wl, a, b, metric, bound, higher=True, unit=""):
            va, vb = self.stat(wl, a, metric), self.stat(wl, b, metric)
            if math.isnan(va) or math.isnan(vb) or not vb:
                out.append((label, "—", "—", "n/a (not measured)"))
                return
            r = va / vb
            ok = r >= bound if higher else r <= bound
            digits = 2 if metric.endswith("_ms") else (1 if metric == "mibps" else 0)
            flagged = [c for c in (a, b) if self.has_errors(wl, c)]
            verdict = ("PASS" if ok else "MISS") + (
                f" (⚠ {', '.join(flagged)} had wrk errors)" if flagged else "")
            out.append((label, f"{a} {fmt(va, digits)}{unit} / {b} {fmt(vb, digits)}{unit}", f"{r:.2f}",
                        verdict))

        ratio_target("hello: gateway ≥ 0.7 × static (req/s, 50 conns)", "hello-50", "gateway", "static", "rps", 0.7)
        ratio_target("hello: gateway ≥ 1.3 × proxy-fcgi", "hello-50", "gateway", "proxy-fcgi", "rps", 1.3)
        ratio_target("hello: gateway ≥ 2.5 × wsgi-daemon", "hello-50", "gateway", "wsgi-daemon", "rps", 2.5)
        ratio_target("hello p99 at 50 conns: gateway ≤ 1.5 × static", "hello-50", "gateway", "static",
                     "p99_ms", 1.5, higher=False, unit=" ms")
        ratio_target("1 MiB download: gateway ≥ 0.5 × static (MiB/s)", "download", "gateway", "static",
                     "mibps", 0.5, unit=" MiB/s")
        ratio_target("10 MiB upload: gateway ≥ 2 × wsgi-daemon (MiB/s)", "upload", "gateway", "wsgi-daemon",
                     "mibps", 2.0, unit=" MiB/s")

        def memory_target(label, sizes: dict[str, int], bound: int, suffix: str = "", missing: str = "—"):
            if not sizes:
                out.append((label, missing, "—", "n/a (not measured)"))
                return
            worst = max(sizes.values())
            out.append((label, ", ".join(f"{k} {mib(v)} MiB" for k, v in sizes.items()) + suffix,
                        f"max {mib(worst)} MiB", "PASS" if worst <= bound else "MISS"))

        rss = {phase: self.rss.get(phase, {}).get("gateway", {}) for phase in ("idle", "after", "more")}
        memory_target("memory: idle gateway worker ≤ 15 MiB RSS",
                      {k: v[1] for k, v in rss["idle"].items() if k.startswith("worker")}, 15 * MIB)
        after, more = rss["after"], rss["more"]
        growth = {k: more[k][1] - after[k][1] for k in more
                  if k.startswith("worker") and k in after and more[k][0] == after[k][0]}
        n, _, failure = self.memruns.get("gateway", (0, 0.0, "not run"))
        memory_target(f"memory: gateway worker growth ≤ 5 MiB over {self.args.memory_requests:,} requests",
                      {} if failure else growth, 5 * MIB, f" ({n:,} requests)", failure or "—")
        return out

    def render(self, elapsed: float) -> str:
        a = self.args
        L = [f"# make bench — {self.started:%Y-%m-%d %H:%M %Z}", "",
             f"{a.rounds} rounds, round-robin; each cell is the median over the rounds of one "
             f"`wrk -t1 -d{a.duration:g}s --latency` run per round (min–max = spread over the rounds). "
             f"MiB/s = response bytes received per second (request bodies sent, for uploads).", ""]
        ran = [w for w in WORKLOADS if w.key in self.args.workloads]
        sections = [
            ("hello-50", "Hello (13 bytes), 50 connections", "static", "rps"),
            ("download", "1 MiB download, 10 connections", "static", "mibps"),
            ("upload", "10 MiB upload, 10 connections", "wsgi-daemon", "mibps"),
            ("post-1k", "1 KiB POST, 10 connections (informational)", "wsgi-daemon", "rps"),
        ]
        for key, title, ref, metric in sections[:1]:
            if key in self.args.workloads:
                L += [f"## {title}", ""] + self.table(WORKLOAD[key], ref, ref, metric) + [""]
        hello = sorted((w for w in ran if w.kind == "hello"), key=lambda w: w.connections)
        if hello:
            L += ["## Hello by connections", ""] + self.by_connections_table(hello) + [""]
            L += ["## CPU per request, hello", "",
                  "User + system time of Apache's children and of the application's processes "
                  "(workers and supervisor, mod_wsgi's daemons, the FastCGI or HTTP server) over a "
                  "load run, divided by its requests; the client (wrk) is not counted. Steadier "
                  "than req/s when the machine is shared.", ""] + self.cpu_table(hello) + [""]
            L += ["The hello ratios of the targets from CPU per request instead of req/s: the "
                  "other configuration's total µs over this one's, i.e. how many of this one's "
                  "requests fit in the CPU time of one of the other's. Informational, and steadier "
                  "than req/s on a shared machine; when the load keeps every CPU busy, the req/s "
                  "ratios follow these.", ""]
            L += self.cpu_ratio_table(hello) + [""]
        for key, title, ref, metric in sections[1:]:
            if key in self.args.workloads:
                L += [f"## {title}", ""] + self.table(WORKLOAD[key], ref, ref, metric) + [""]
                # Apache's share against the application's: what a faster worker could still gain.
                L += ["CPU per request:", ""] + self.cpu_table([WORKLOAD[key]]) + [""]
        L += ["## Memory (RSS)", "",
              "idle = after start and the readiness/verification requests, before any load; after the "
              f"run = after all rounds; then hello at 50 connections until ≥ {a.memory_requests:,} more "
              "requests were served (bounded).", "",
              *self.memory_table(), "", *self.memory_runs_lines(), "",
              "## Targets (recorded, not asserted)", "",
              *header(["target", "measured", "ratio / value", "verdict"]), *(row(list(t)) for t in self.targets()), "",
              "## Settings", "", *self.settings_lines(elapsed), "",
              "## Problems", "",
              *([f"- {p}" for p in self.problems] or ["- none: every configuration started and answered correctly; "
                                                       "no wrk errors, no non-2xx answers."]), "",
              "## Error-log lines (level error or worse) during the load runs", "", *self.log_error_lines(), "",
              "## Other load on the machine during the load runs", "", *self.noise_lines()]
        if self.notes:
            L += ["", "## Notes", "", *[f"- {n}" for n in self.notes]]
        return "\n".join(L) + "\n"

    @staticmethod
    def log_key(line: str) -> str:
        m = re.search(r"\b(AH\d{5}|SG\d{4})\b", line)
        if m:
            return m.group(1)
        m = re.search(r"mod_wsgi \(pid=\d+\): (.*)", line)
        text = m.group(1) if m else line.rsplit("] ", 1)[-1]
        return re.sub(r"\d+", "N", text)[:80]

    def log_error_lines(self) -> list[str]:
        groups: dict[tuple[str, str], dict] = {}
        sources = [(r.config, r.workload, r.log_errors) for r in self.runs]
        sources += [(cfg, "memory run", lines) for cfg, lines in self.mem_log_errors.items()]
        for cfg, where, lines in sources:
            for line in lines:
                g = groups.setdefault((cfg, self.log_key(line)), {"n": 0, "where": {}, "sample": line})
                g["n"] += 1
                g["where"][where] = g["where"].get(where, 0) + 1
        if not groups:
            return ["- none"]
        out = ["Informational (they do not change the exit status; wrk's errors and non-2xx answers do). "
               "When wrk's duration ends it closes its connections, uploads in flight included, which "
               "some servers log as errors.", ""]
        for (cfg, key), g in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[1]["n"])):
            where = ", ".join(f"{w} {n}" for w, n in g["where"].items())
            sample = re.sub(r"^\[[^]]*\d{4}\] ", "", g["sample"])[:260]
            out.append(f"- {cfg}: {g['n']} × `{key}` ({where}); e.g. `{sample}`")
        return out

    def noise_lines(self) -> list[str]:
        runs = [r for r in self.runs if r.seconds]
        if not runs:
            return ["- no load run completed"]
        vals = [r.foreign_cpu for r in runs]
        out = [f"- CPU used by processes other than this benchmark's (share of all {os.cpu_count()} CPUs): "
               f"median {med(vals):.1f}%, max {max(vals):.1f}% over {len(runs)} runs "
               f"(before the start: {self.busy_before})"]
        noisy = [r for r in runs if r.foreign_cpu >= 10]
        if noisy:
            out.append(f"- **{len(noisy)} run(s) shared the machine with ≥ 10% other load; their numbers "
                       "are less trustworthy** (the medians over the rounds damp this):")
            for r in noisy[:12]:
                top = ", ".join(f"{name} {pct:.0f}%" for pct, name in r.foreign_top)
                out.append(f"  - round {r.round}, {r.workload}, {r.config}: {r.foreign_cpu:.0f}% ({top})")
            if len(noisy) > 12:
                out.append(f"  - … and {len(noisy) - 12} more")
        return out

    def settings_lines(self, elapsed: float) -> list[str]:
        def cmd_out(cmd: list[str]) -> str:
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (p.stdout + p.stderr).strip()
            except Exception as e:  # noqa: BLE001
                return f"? ({e})"
        apache_v = (cmd_out(["/usr/sbin/apache2", "-v"]).splitlines() or ["?"])[0].replace("Server version: ", "")
        wrk_v = (cmd_out(["wrk", "-v"]).splitlines() or ["?"])[0]
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
        except OSError:
            cpu = "?"
        wsgi_v = cmd_out(["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-wsgi-py3"])
        return [
            f"- machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}; "
            f"load average before/after: {self.load_before} / {self.load_after}",
            f"- client: {wrk_v}; `-t1`, `--timeout 10s`, `-d{self.args.duration:g}s` per load run; "
            "hello at 10/50/200 connections, downloads and uploads at 10 connections",
            f"- Apache: {apache_v}, same settings for static, gateway, proxy-fcgi and wsgi-daemon: "
            f"{APACHE_SETTINGS_TEXT}",
            "- gateway: `SwiftDaemonProcess bench processes=2 threads=15` + "
            "`SwiftScriptAlias / <GatewayFixture copy> process-group=bench`",
            "- gateway-hummingbird: the same group serving Examples/HummingbirdSite (`/hello`, a Hummingbird "
            "router route, through SwiftGatewayHummingbird); hello only, informational",
            "- gateway-t30: the same with `threads=30` (60 slots: room for every request at 50 "
            "connections); hello only, informational (the targets use gateway)",
            "- gateway-floor: `SwiftDaemonProcess bench processes=2` + `SwiftScriptAlias /` "
            "bench/null_worker.c (two C epoll loops that answer every request at once): the module "
            "with a worker that costs next to nothing; hello only, informational",
            "- gateway-nio-floor: the same with bench/Sources/NIOFloorWorker (two SwiftNIO event loops, one "
            "channel handler per connection that answers every request at once, no request path): "
            "the best a SwiftNIO worker could do; hello only, informational",
            f"- proxy-fcgi: GatewayFixture `--fastcgi unix:PATH` (one process, as {WWW_USER}) behind "
            "`ProxyPass / unix:PATH|fcgi://localhost/` (connection reuse off, mod_proxy_fcgi's default), "
            "`proxy-fcgi-pathinfo=unescape`",
            f"- wsgi-daemon: Debian mod_wsgi {wsgi_v}, `WSGIDaemonProcess bench processes=2 threads=15`, "
            "`WSGIApplicationGroup %{GLOBAL}`, bench/wsgi_hello.py",
            "- static: Apache's core file handler (`hello`, 13 bytes; `1m`, 1 MiB)",
            f"- standalone: GatewayFixture `--http 127.0.0.1:PORT` (as {StandaloneConfig.user}), no Apache",
            f"- total time: {elapsed / 60:.1f} min",
        ]
