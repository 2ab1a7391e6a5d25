#!/usr/bin/env python3
"""`make bench`: SwiftGateway against Apache's static files, mod_proxy_fcgi,
mod_wsgi daemon mode and the worker program serving HTTP itself.

Every configuration runs as its own private server on 127.0.0.1 (the Apache
ones through Tests/Integration/sg_harness.py's ApacheServer, with one shared
MPM/keep-alive configuration).  All of them are started first, then measured
in the same run, round-robin: round 1 runs every workload against every
configuration, then round 2, ...; the order of the configurations rotates
from round to round.  Each load run is one bounded `wrk -t1 -dNs` run.  The
tables report medians over the rounds and the min–max spread.  Afterwards a
hello run of >= 100,000 requests per gateway-like configuration measures
memory growth.  Everything started here is stopped by pid (also on Ctrl-C).

Progress goes to stderr; the final tables go to stdout and to
bench/results/latest.md.  Exit status: 0 when every configuration started,
answered correctly and every load run was free of errors (targets are only
reported, PASS or MISS); 1 when something broke; 2 on bad usage; 130 when
interrupted (Ctrl-C, SIGTERM).

See bench/README.md for what each configuration is and how to read the tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "Tests", "Integration"))

MIB = 1024 * 1024
HELLO = b"Hello world!\n"
DOWNLOAD_BYTES = 1 * MIB
UPLOAD_BYTES = 10 * MIB
MOD_WSGI = "/usr/lib/apache2/modules/mod_wsgi.so"
WWW_USER = "www-data"
STANDALONE_USER = WWW_USER       # who runs the `standalone` HTTP server (--standalone-user)

CONFIGS = ("static", "gateway", "gateway-t30", "gateway-floor", "gateway-nio-floor", "proxy-fcgi", "wsgi-daemon", "standalone")
GATEWAY_LIKE = ("gateway", "proxy-fcgi", "wsgi-daemon")

# The Apache settings every Apache-based configuration shares.  The MPM pool
# (event, StartServers 2, ServerLimit 2, ...) comes from
# sg_harness.ApacheServer.render_config; these lines are appended to it (a
# later directive wins).
COMMON_APACHE = [
    # A thread per connection even if one child accepts all 200 connections of
    # the largest run: when every thread of a child is busy, the event MPM
    # closes that child's keep-alive connections, which wrk counts as read errors.
    "ThreadLimit 256",
    "ThreadsPerChild 256",
    "MaxRequestWorkers 512",
    "MaxSpareThreads 512",
    "MaxKeepAliveRequests 0",
    # As Debian's apache2.conf: no .htaccess look-ups (five failed opens per request here).
    "<Directory />",
    "    AllowOverride None",
    "</Directory>",
]
APACHE_SETTINGS_TEXT = (
    "MPM event; StartServers 2, ServerLimit 2, ThreadLimit 256, ThreadsPerChild 256, "
    "MaxRequestWorkers 512, MinSpareThreads 1, MaxSpareThreads 512, MaxConnectionsPerChild 0 "
    "(a fixed pool of two children); KeepAlive On, KeepAliveTimeout 5, MaxKeepAliveRequests 0 "
    "(unlimited); Timeout 120; LimitRequestBody 0; AllowOverride None (Debian's default); "
    "LogLevel warn; no access log; "
    "EnableSendfile/EnableMMAP at Apache's defaults (Off/On); no mod_mime (static answers carry "
    "no Content-Type)"
)

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """Something broke: a server did not start or answered wrongly."""


# --------------------------------------------------------------------------
# dependencies


def ensure_dependencies(install: bool) -> None:
    """wrk and Debian's mod_wsgi (and, for sg_harness, python requests)."""
    packages = []
    if not shutil.which("wrk"):
        packages.append("wrk")
    if not os.path.exists(MOD_WSGI):
        packages.append("libapache2-mod-wsgi-py3")
    try:
        import requests  # noqa: F401
    except ImportError:
        if sys.executable.startswith("/usr/bin/"):
            packages.append("python3-requests")
        else:
            raise BenchError(f"python module 'requests' is missing for {sys.executable}: "
                             f"`{sys.executable} -m pip install requests`")
    if not os.access("/usr/sbin/apache2", os.X_OK):
        packages.append("apache2")
    if not packages:
        return
    if not install:
        raise BenchError(f"missing: {' '.join(packages)} (run without --no-install to apt-get them)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {' '.join(packages)} with apt-get")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = subprocess.run(sudo + cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed (rc={proc.returncode}):\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-2000:]}")


# Imported after the dependency check (sg_harness needs requests).
H = None  # sg_harness module
requests = None


def import_harness() -> None:
    global H, requests
    import requests as _requests
    import sg_harness as _h
    H, requests = _h, _requests


# --------------------------------------------------------------------------
# CPU used by processes that are not ours (other work on a shared machine)

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


# --------------------------------------------------------------------------
# wrk


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
           "--timeout", "10s", "-s", os.path.join(HERE, script), url]
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


# --------------------------------------------------------------------------
# configurations


class Config:
    name = ""
    has_download = False
    has_upload = False
    hello_path = "/hello"
    download_path = f"/bytes?n={DOWNLOAD_BYTES}"
    upload_path = "/upload"

    def __init__(self, artifacts):
        self.artifacts = artifacts
        self.srv = None            # sg_harness.ApacheServer (also used as a private root)
        self.proc: subprocess.Popen | None = None   # a program started here (not by Apache)
        self.proc_log = ""
        self.port = 0

    # -- lifecycle
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> list[str]:
        """Stop everything of this configuration; returns problems (never raises)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append(f"{self.name}: pid {self.proc.pid} ignored SIGTERM, killed")
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{self.name}: stopping pid {self.proc.pid}: {e!r}")
        if self.srv is not None:
            try:
                if self.srv.pid is not None and not self.srv.stopped:
                    self.srv.stop()
            except Exception as e:  # noqa: BLE001
                problems.append(f"{self.name}: stopping Apache: {e!r}")
            try:
                left = self.srv.kill_all()
                if left:
                    problems.append(f"{self.name}: had to SIGKILL leftover pids {left}")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{self.name}: kill_all: {e!r}")
        return problems

    def cleanup(self) -> None:
        if self.srv is not None:
            self.srv.cleanup()

    # -- addresses
    def url(self, path: str) -> str:
        return f"http://{H.HOST}:{self.port}{path}"

    # -- processes
    def alive_problem(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            return f"{self.name}: program pid {self.proc.pid} exited (rc={self.proc.returncode})"
        if self.srv is not None and self.srv.pid is not None and not H.pid_alive(self.srv.pid):
            return f"{self.name}: Apache parent {self.srv.pid} died"
        return ""

    def worker_pids(self) -> dict[str, int]:
        """label -> pid of the application processes."""
        return {}

    def apache_child_pids(self) -> dict[str, int]:
        if self.srv is None or self.srv.pid is None:
            return {}
        return {f"apache child {i + 1}": p for i, p in enumerate(self._apache_children())}

    def _apache_children(self) -> list[int]:
        return self.srv.apache_children()

    def memory_pids(self) -> dict[str, int]:
        return {**self.worker_pids(), **self.apache_child_pids()}

    # -- logs
    def log_marks(self) -> dict[str, int]:
        """Current sizes of this configuration's logs (Apache's error log, the program's output)."""
        paths = []
        if self.srv is not None and self.srv.pid is not None:
            paths.append(self.srv.error_log)
        if self.proc_log:
            paths.append(self.proc_log)
        out = {}
        for p in paths:
            try:
                out[p] = os.path.getsize(p)
            except OSError:
                out[p] = 0
        return out

    def new_error_lines(self, marks: dict[str, int]) -> list[str]:
        """Lines at level error or worse written to the logs since marks."""
        lines = []
        for path, offset in marks.items():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    text = f.read(4 * MIB).decode("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                if re.search(r"\[[a-z_0-9]*:(error|crit|alert|emerg)\]|Fatal error", line):
                    lines.append(line)
        return lines

    def program_log_tail(self, n: int = 30) -> str:
        try:
            with open(self.proc_log, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def diagnostics(self) -> str:
        parts = []
        if self.srv is not None and self.srv.pid is not None:
            parts.append(f"error.log of {self.name} ({self.srv.error_log}):\n{self.srv.error_log_tail(40)}")
        if self.proc_log:
            try:
                with open(self.proc_log, errors="replace") as f:
                    head = "\n".join(f.read().splitlines()[:12])
            except OSError:
                head = ""
            parts.append(f"output of {self.name}'s program (first lines):\n{head}")
        return "\n".join(parts)

    # -- helpers
    def _apache_body(self, *lines: str, gateway: bool = False) -> str:
        level = "LogLevel warn swift_gateway:warn" if gateway else "LogLevel warn"
        return "\n".join([level, *COMMON_APACHE, *lines])

    def _start_program(self, args: list[str], user: str = WWW_USER) -> None:
        """Run the private copy of the fixture program as `user` (not via Apache)."""
        self.proc_log = os.path.join(self.srv.root, "program.log")
        out = open(self.proc_log, "wb")
        pw = pwd.getpwnam(user)
        self.proc_user = user
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C", "HOME": self.srv.root,
               "SG_TEST_TAG": self.srv.tag}
        try:
            self.proc = subprocess.Popen(
                [self.srv.bin, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.srv.root, env=env, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                start_new_session=True)
        finally:
            out.close()
        log(f"{self.name}: started {os.path.basename(self.srv.bin)} {' '.join(args)} "
            f"as {user}, pid {self.proc.pid}")

    def _program_failed(self, what: str) -> BenchError:
        rc = self.proc.poll() if self.proc else None
        state = f"exited with status {rc}" if rc is not None else "is running"
        lines = self.program_log_tail(400).splitlines()
        key = [ln for ln in lines if re.search(r"Fatal error|error:|\*\*\* Program crashed|usage:", ln)][:4]
        return BenchError(
            f"{self.name}: {what}: `{os.path.basename(self.srv.bin)} {' '.join(self.proc.args[1:])}` "
            f"(as {self.proc_user}) {state}. Its output: " + " | ".join(key or lines[-6:]))


class StaticConfig(Config):
    name = "static"
    has_download = True
    download_path = "/1m"

    def start(self) -> None:
        self.srv = H.ApacheServer(None, name="bench-static")
        for fname, data in (("hello", HELLO), ("1m", H.pattern_block(DOWNLOAD_BYTES))):
            path = os.path.join(self.srv.docroot, fname)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o644)
        self.srv.configure(self._apache_body(), with_module=False)
        self.srv.start(ready_path="/hello", expect_gateway=False)
        self.port = self.srv.port


class GatewayConfig(Config):
    name = "gateway"
    has_download = True
    has_upload = True
    threads = 15

    def start(self) -> None:
        self.srv = H.ApacheServer(self.artifacts, name=f"bench-{self.name}")
        body = self._apache_body(
            self.srv.daemon("bench", "processes=2", *self._group_options()),
            f"SwiftScriptAlias / {self._program()} process-group=bench",
            gateway=True)
        self.srv.configure(body)
        self.srv.start(ready_path="/hello", expect_gateway=True)
        self.srv.wait_workers("bench", 2)
        self.port = self.srv.port

    def _program(self) -> str:
        """The group program: the server root's copy of the fixture program."""
        return self.srv.bin

    def _group_options(self) -> list[str]:
        return [f"threads={self.threads}"]

    def worker_pids(self) -> dict[str, int]:
        out = {}
        sup = self.srv.supervisors().get("bench")
        if sup:
            out["supervisor"] = sup
        for i, p in enumerate(sorted(self.srv.workers("bench"))):
            out[f"worker {i + 1}"] = p
        return out


class GatewayWideConfig(GatewayConfig):
    """The same group with room for every request of the 50-connection run (2 × 30 slots): a
    worker's slots are concurrent requests on its event loop, not threads, so an async
    application can have many. Hello only, informational: the targets use `gateway`."""
    name = "gateway-t30"
    has_download = False
    has_upload = False
    threads = 30


class GatewayFloorConfig(GatewayConfig):
    """The module with a group program that costs next to nothing (bench/null_worker.c: an
    epoll loop in C that answers every request with the hello at once): the ceiling of any
    worker behind mod_swift_gateway on this machine. Hello only, informational."""
    name = "gateway-floor"
    has_download = False
    has_upload = False

    def _program(self) -> str:
        """bench/null_worker.c, built into the server root."""
        program = os.path.join(self.srv.bin_dir, "null_worker")
        build = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", program,
                                os.path.join(HERE, "null_worker.c")], capture_output=True, text=True)
        if build.returncode != 0:
            raise BenchError(f"{self.name}: building bench/null_worker.c failed: {build.stderr.strip()}")
        os.chmod(program, 0o755)
        return program

    def _group_options(self) -> list[str]:
        return []   # its two processes serve as many requests at once as Apache sends


class GatewayNIOFloorConfig(GatewayFloorConfig):
    """The module with a SwiftNIO worker that does nothing but answer (bench/Sources/NIOFloorWorker: one
    channel handler per connection that passes over the records and answers every request at
    its empty STDIN with the hello, keeping the connection): the best a SwiftNIO worker could do
    on this machine. Between it and `gateway` lies the worker's own request path, between it and
    `gateway-floor` SwiftNIO. Hello only, informational."""
    name = "gateway-nio-floor"

    def _program(self) -> str:
        """The build `make nio-floor` made ($SG_NIO_FLOOR), copied into the server root."""
        source = os.environ.get("SG_NIO_FLOOR") or os.path.join(REPO, ".build-bench", "release", "NIOFloorWorker")
        if not os.path.isfile(source):
            raise BenchError(f"{self.name}: {source} is missing (`make nio-floor` builds it)")
        program = os.path.join(self.srv.bin_dir, "NIOFloorWorker")
        shutil.copy2(source, program)
        os.chmod(program, 0o755)
        return program


class ProxyFcgiConfig(Config):
    name = "proxy-fcgi"
    has_download = True
    has_upload = True

    def start(self) -> None:
        self.srv = H.ApacheServer(self.artifacts, name="bench-proxy-fcgi")
        pw = pwd.getpwnam(WWW_USER)
        sock_dir = os.path.join(self.srv.root, "fcgi")
        os.makedirs(sock_dir)
        os.chown(sock_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(sock_dir, 0o755)
        self.sock = os.path.join(sock_dir, "app.sock")
        self._start_program(["--fastcgi", f"unix:{self.sock}"])
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise self._program_failed("the FastCGI server did not start")
            if os.path.exists(self.sock):
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.settimeout(1)
                        s.connect(self.sock)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise self._program_failed(f"no connectable socket {self.sock} within 20 s")
            time.sleep(0.1)
        body = self._apache_body(
            # PATH_INFO = the URL path (like the gateway's `SwiftScriptAlias /`):
            # without it mod_proxy_fcgi sends no PATH_INFO and the fixture
            # program, which picks the page by PATH_INFO, would serve its home page.
            'SetEnvIf Request_URI "^" proxy-fcgi-pathinfo=unescape',
            f'ProxyPass "/" "unix:{self.sock}|fcgi://localhost/"',
        )
        self.srv.configure(body, extra_modules=("setenvif", "proxy", "proxy_fcgi"), with_module=False)
        self.srv.start(ready_path="/hello", expect_gateway=False)
        self.port = self.srv.port

    def worker_pids(self) -> dict[str, int]:
        if self.proc is not None and self.proc.poll() is None:
            return {"FastCGI server": self.proc.pid}
        return {}


class WsgiConfig(Config):
    name = "wsgi-daemon"
    has_download = True
    has_upload = True

    def start(self) -> None:
        self.srv = H.ApacheServer(None, name="bench-wsgi")
        app_dir = os.path.join(self.srv.root, "wsgi")
        os.makedirs(app_dir)
        os.chmod(app_dir, 0o755)
        app = os.path.join(app_dir, "wsgi_hello.py")
        shutil.copy2(os.path.join(HERE, "wsgi_hello.py"), app)
        os.chmod(app, 0o644)
        body = self._apache_body(
            # display-name only names the daemon processes (for finding their pids).
            "WSGIDaemonProcess bench processes=2 threads=15 display-name=%{GROUP}",
            "WSGIProcessGroup bench",
            "WSGIApplicationGroup %{GLOBAL}",
            f"WSGIScriptAlias / {app}",
            f"<Directory {app_dir}>",
            "    Require all granted",
            "</Directory>",
        )
        self.srv.configure(body, extra_modules=("wsgi",), with_module=False)
        self.srv.start(ready_path="/hello", expect_gateway=False)
        self.port = self.srv.port
        H.wait_until(lambda: len(self._daemons()) == 2, 30, message="2 mod_wsgi daemon processes")

    def _daemons(self) -> list[int]:
        return sorted(p for p in H.proc_children(self.srv.pid)
                      if (H.proc_cmdline(p) or [""])[0].startswith("(wsgi:"))

    def _apache_children(self) -> list[int]:
        daemons = set(self._daemons())
        return [p for p in self.srv.apache_children() if p not in daemons]

    def worker_pids(self) -> dict[str, int]:
        return {f"daemon {i + 1}": p for i, p in enumerate(self._daemons())}


class StandaloneConfig(Config):
    name = "standalone"

    def start(self) -> None:
        # An ApacheServer that is never started: a private root (0755) holding
        # the program copy; its kill_all() finds processes run from it.
        self.srv = H.ApacheServer(self.artifacts, name="bench-standalone")
        self.port = H.free_port()
        self._start_program(["--http", f"{H.HOST}:{self.port}"], user=STANDALONE_USER)
        deadline = time.monotonic() + 20
        last = "no answer"
        while True:
            if self.proc.poll() is not None:
                raise self._program_failed("the HTTP server did not start")
            try:
                r = requests.get(self.url("/hello"), timeout=2)
                if r.status_code == 200:
                    break
                last = f"status {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise self._program_failed(f"no 200 from {self.url('/hello')} within 20 s ({last})")
            time.sleep(0.1)

    def worker_pids(self) -> dict[str, int]:
        if self.proc is not None and self.proc.poll() is None:
            return {"HTTP server": self.proc.pid}
        return {}


CONFIG_CLASSES = {c.name: c for c in (StaticConfig, GatewayConfig, GatewayWideConfig, GatewayFloorConfig,
                                        GatewayNIOFloorConfig,
                                        ProxyFcgiConfig, WsgiConfig, StandaloneConfig)}


def verify(cfg: Config) -> None:
    """The configuration serves exactly what the workloads expect."""
    headers = {"Connection": "close"}
    r = requests.get(cfg.url(cfg.hello_path), headers=headers, timeout=30)
    if r.status_code != 200 or r.content != HELLO:
        raise BenchError(f"{cfg.name}: GET {cfg.hello_path} answered {r.status_code} with "
                         f"{r.content[:300]!r} (expected 200 and exactly {HELLO!r})")
    if cfg.name.startswith("gateway") and "X-Gateway-Pid" not in r.headers:
        raise BenchError(f"{cfg.name}: /hello was not answered by a gateway worker: {dict(r.headers)}")
    if cfg.has_download:
        r = requests.get(cfg.url(cfg.download_path), headers=headers, timeout=60)
        if r.status_code != 200 or r.content != H.pattern_block(DOWNLOAD_BYTES):
            raise BenchError(f"{cfg.name}: GET {cfg.download_path} answered {r.status_code} with "
                             f"{len(r.content)} bytes (expected 200 and the {DOWNLOAD_BYTES}-byte pattern)")
    if cfg.has_upload:
        r = requests.post(cfg.url(cfg.upload_path), data=b"x" * UPLOAD_BYTES,
                          headers={**headers, "Content-Type": "application/octet-stream"}, timeout=60)
        if r.status_code != 200 or r.content.strip() != str(UPLOAD_BYTES).encode():
            raise BenchError(f"{cfg.name}: POST {cfg.upload_path} ({UPLOAD_BYTES} bytes) answered "
                             f"{r.status_code} with {r.content[:200]!r} (expected its length)")


# --------------------------------------------------------------------------
# workloads


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: str            # hello | download | upload
    connections: int
    configs: tuple[str, ...]
    body_bytes: int = UPLOAD_BYTES   # of each request, for uploads


def workloads() -> list[Workload]:
    return [
        Workload("hello-50", "hello, 50 connections", "hello", 50, CONFIGS),
        Workload("hello-10", "hello, 10 connections", "hello", 10, CONFIGS),
        Workload("hello-200", "hello, 200 connections", "hello", 200, CONFIGS),
        Workload("download", "1 MiB download, 10 connections", "download", 10,
                 ("static", *GATEWAY_LIKE)),
        Workload("upload", "10 MiB upload, 10 connections", "upload", 10, GATEWAY_LIKE),
        Workload("post-1k", "1 KiB POST, 10 connections", "upload", 10, GATEWAY_LIKE, body_bytes=1024),
    ]


def pid_ticks(pid: int) -> int | None:
    """utime + stime (clock ticks, all threads) of a process; None when it is gone."""
    stat = proc_stat_fields(pid)
    return None if stat is None else int(stat[1][11]) + int(stat[1][12])


def process_ticks(cfg: Config) -> dict[str, int]:
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


# --------------------------------------------------------------------------
# memory


def read_rss(cfg: Config) -> dict[str, tuple[int, int]]:
    """label -> (pid, RSS bytes)."""
    out = {}
    for label, pid in cfg.memory_pids().items():
        rss = H.proc_rss_bytes(pid)
        if rss is not None:
            out[label] = (pid, rss)
    return out


def hundred_k(cfg: Config, target: int, max_seconds: float, rate_hint: float) -> tuple[int, float, str]:
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


# --------------------------------------------------------------------------
# report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(v: float, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:,.{digits}f}"


def mib(b: int) -> str:
    return f"{b / MIB:.1f}"


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
        digits = 1 if metric == "mibps" else 0
        head = ["configuration", "req/s", "req/s min–max", "p50 ms", "p99 ms", "MiB/s",
                "MiB/s min–max", f"ratio to {ref_label}" if ref else "ratio"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cfg in wl.configs:
            if cfg not in self.configs:
                continue
            n = len(self.good_runs(wl.key, cfg))
            if n == 0:
                lines.append(f"| {cfg} | {self._missing(wl.key, cfg)} |" + " |" * (len(head) - 2))
                continue
            ratio = "—"
            if ref:
                mine, theirs = self.stat(wl.key, cfg, metric), self.stat(wl.key, ref, metric)
                if theirs and not math.isnan(theirs) and not math.isnan(mine):
                    ratio = f"{mine / theirs:.2f}"
            lines.append("| " + " | ".join([
                self.label(wl.key, cfg),
                fmt(self.stat(wl.key, cfg, "rps")),
                self.spread(wl.key, cfg, "rps"),
                fmt(self.stat(wl.key, cfg, "p50_ms"), 2),
                fmt(self.stat(wl.key, cfg, "p99_ms"), 2),
                fmt(self.stat(wl.key, cfg, "mibps"), 1),
                self.spread(wl.key, cfg, "mibps", 1),
                ratio,
            ]) + " |")
        return lines

    def by_connections_table(self, wls: list[Workload]) -> list[str]:
        head = ["configuration", "connections", "req/s", "req/s min–max", "p50 ms", "p99 ms",
                "ratio to static"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cfg in wls[0].configs:
            if cfg not in self.configs:
                continue
            for wl in wls:
                n = len(self.good_runs(wl.key, cfg))
                if n == 0:
                    lines.append(f"| {cfg} | {wl.connections} | {self._missing(wl.key, cfg)} |"
                                 + " |" * (len(head) - 3))
                    continue
                mine, static = self.stat(wl.key, cfg, "rps"), self.stat(wl.key, "static", "rps")
                ratio = f"{mine / static:.2f}" if static and not math.isnan(static) else "—"
                lines.append("| " + " | ".join([
                    self.label(wl.key, cfg), str(wl.connections), fmt(mine), self.spread(wl.key, cfg, "rps"),
                    fmt(self.stat(wl.key, cfg, "p50_ms"), 2), fmt(self.stat(wl.key, cfg, "p99_ms"), 2),
                    ratio]) + " |")
        return lines

    def cpu_table(self, wls: list[Workload]) -> list[str]:
        head = ["configuration", "connections", "Apache µs", "application µs", "total µs",
                "total µs min–max"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cfg in wls[0].configs:
            if cfg not in self.configs:
                continue
            for wl in wls:
                if not self.good_runs(wl.key, cfg):
                    continue
                lines.append("| " + " | ".join([
                    cfg, str(wl.connections), fmt(self.stat(wl.key, cfg, "cpu_apache_us")),
                    fmt(self.stat(wl.key, cfg, "cpu_app_us")), fmt(self.stat(wl.key, cfg, "cpu_total_us")),
                    self.spread(wl.key, cfg, "cpu_total_us")]) + " |")
        return lines

    def cpu_ratio_table(self, wls: list[Workload]) -> list[str]:
        """The hello ratios of the targets, from CPU per request instead of req/s."""
        anchors = [c for c in ("static", "proxy-fcgi", "wsgi-daemon") if c in self.configs]
        head = ["configuration", "connections", *[f"× {c}" for c in anchors]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cfg in ("gateway", "gateway-t30", "gateway-floor", "gateway-nio-floor"):
            if cfg not in self.configs:
                continue
            for wl in wls:
                mine = self.stat(wl.key, cfg, "cpu_total_us")
                if not self.good_runs(wl.key, cfg) or math.isnan(mine) or not mine:
                    continue
                cells = []
                for anchor in anchors:
                    theirs = self.stat(wl.key, anchor, "cpu_total_us")
                    cells.append("—" if math.isnan(theirs) else f"{theirs / mine:.2f}")
                lines.append("| " + " | ".join([cfg, str(wl.connections), *cells]) + " |")
        return lines

    def memory_table(self) -> list[str]:
        head = ["configuration", "process", "pid", "idle MiB", "after the run MiB",
                f"after +{self.args.memory_requests:,} requests MiB", "growth over those requests MiB",
                "growth since idle MiB"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cfg in GATEWAY_LIKE:
            if cfg not in self.configs or cfg in self.failed:
                if cfg in self.failed or cfg in self.args.only:
                    lines.append(f"| {cfg} | {self._missing('', cfg)} |" + " |" * (len(head) - 2))
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
                cells.append(mib(vals[2] - vals[1]) if vals[2] is not None and vals[1] is not None else "—")
                cells.append(mib(vals[2] - vals[0]) if vals[2] is not None and vals[0] is not None else "—")
                lines.append("| " + " | ".join(cells) + " |")
        return lines

    def memory_runs_lines(self) -> list[str]:
        out = []
        for cfg, (n, secs, failure) in self.memruns.items():
            text = f"- {cfg}: {n:,} hello requests in {secs:.1f} s at 50 connections"
            if failure:
                text += f" — **{failure}**"
            out.append(text)
        return out

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

        idle = {k: v for k, v in self.rss.get("idle", {}).get("gateway", {}).items() if k.startswith("worker")}
        if idle:
            worst = max(v[1] for v in idle.values())
            out.append(("memory: idle gateway worker ≤ 15 MiB RSS",
                        ", ".join(f"{k} {mib(v[1])} MiB" for k, v in idle.items()),
                        f"max {mib(worst)} MiB", "PASS" if worst <= 15 * MIB else "MISS"))
        else:
            out.append(("memory: idle gateway worker ≤ 15 MiB RSS", "—", "—", "n/a (not measured)"))
        after = self.rss.get("after", {}).get("gateway", {})
        more = self.rss.get("more", {}).get("gateway", {})
        growth = {k: more[k][1] - after[k][1] for k in more
                  if k.startswith("worker") and k in after and more[k][0] == after[k][0]}
        n, _, failure = self.memruns.get("gateway", (0, 0.0, "not run"))
        if growth and not failure:
            worst = max(growth.values())
            out.append((f"memory: gateway worker growth ≤ 5 MiB over {self.args.memory_requests:,} requests",
                        ", ".join(f"{k} {mib(v)} MiB" for k, v in growth.items()) + f" ({n:,} requests)",
                        f"max {mib(worst)} MiB", "PASS" if worst <= 5 * MIB else "MISS"))
        else:
            out.append((f"memory: gateway worker growth ≤ 5 MiB over {self.args.memory_requests:,} requests",
                        failure or "—", "—", "n/a (not measured)"))
        return out

    def render(self, elapsed: float) -> str:
        a = self.args
        wls = {w.key: w for w in workloads()}
        L = [f"# make bench — {self.started:%Y-%m-%d %H:%M %Z}", ""]
        L.append(f"{a.rounds} rounds, round-robin; each cell is the median over the rounds of one "
                 f"`wrk -t1 -d{a.duration:g}s --latency` run per round (min–max = spread over the rounds). "
                 f"MiB/s = response bytes received per second (request bodies sent, for uploads).")
        L.append("")
        ran = [w for w in workloads() if w.key in self.args.workloads]
        sections = [
            ("hello-50", "Hello (13 bytes), 50 connections", "static", "rps"),
            ("download", "1 MiB download, 10 connections", "static", "mibps"),
            ("upload", "10 MiB upload, 10 connections", "wsgi-daemon", "mibps"),
            ("post-1k", "1 KiB POST, 10 connections (informational)", "wsgi-daemon", "rps"),
        ]
        for key, title, ref, metric in sections[:1]:
            if key in self.args.workloads:
                L += [f"## {title}", ""] + self.table(wls[key], ref, ref, metric) + [""]
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
                L += [f"## {title}", ""] + self.table(wls[key], ref, ref, metric) + [""]
                # Apache's share against the application's: what a faster worker could still gain.
                L += ["CPU per request:", ""] + self.cpu_table([wls[key]]) + [""]
        L.append("## Memory (RSS)")
        L.append("")
        L.append("idle = after start and the readiness/verification requests, before any load; after the "
                 f"run = after all rounds; then hello at 50 connections until ≥ {a.memory_requests:,} more "
                 "requests were served (bounded).")
        L.append("")
        L += self.memory_table()
        L.append("")
        L += self.memory_runs_lines()
        L.append("")
        L.append("## Targets (recorded, not asserted)")
        L.append("")
        L.append("| target | measured | ratio / value | verdict |")
        L.append("|---|---|---|---|")
        for t in self.targets():
            L.append("| " + " | ".join(t) + " |")
        L.append("")
        L.append("## Settings")
        L.append("")
        L += self.settings_lines(elapsed)
        L.append("")
        L.append("## Problems")
        L.append("")
        if self.problems:
            L += [f"- {p}" for p in self.problems]
        else:
            L.append("- none: every configuration started and answered correctly; no wrk errors, "
                     "no non-2xx answers.")
        L.append("")
        L.append("## Error-log lines (level error or worse) during the load runs")
        L.append("")
        L += self.log_error_lines()
        L.append("")
        L.append("## Other load on the machine during the load runs")
        L.append("")
        L += self.noise_lines()
        if self.notes:
            L.append("")
            L.append("## Notes")
            L.append("")
            L += [f"- {n}" for n in self.notes]
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
            sample = g["sample"]
            sample = re.sub(r"^\[[^]]*\d{4}\] ", "", sample)[:260]
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
        apache_v = cmd_out(["/usr/sbin/apache2", "-v"]).splitlines()
        apache_v = apache_v[0].replace("Server version: ", "") if apache_v else "?"
        wrk_v = cmd_out(["wrk", "-v"]).splitlines()
        wrk_v = wrk_v[0] if wrk_v else "?"
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        wsgi_v = cmd_out(["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-wsgi-py3"])
        return [
            f"- machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}; "
            f"load average before/after: {self.load_before} / {self.load_after}",
            f"- client: {wrk_v}; `-t1`, `--timeout 10s`, {a_dur(self.args)} per load run; "
            "hello at 10/50/200 connections, downloads and uploads at 10 connections",
            f"- Apache: {apache_v}, same settings for static, gateway, proxy-fcgi and wsgi-daemon: "
            f"{APACHE_SETTINGS_TEXT}",
            "- gateway: `SwiftDaemonProcess bench processes=2 threads=15` + "
            "`SwiftScriptAlias / <GatewayFixture copy> process-group=bench`",
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
            f"- standalone: GatewayFixture `--http 127.0.0.1:PORT` (as {STANDALONE_USER}), no Apache",
            f"- total time: {elapsed / 60:.1f} min",
        ]


def a_dur(args) -> str:
    return f"`-d{args.duration:g}s`"


# --------------------------------------------------------------------------
# main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds over all runs (default 3)")
    p.add_argument("--duration", type=float, default=5, help="seconds per load run (default 5)")
    p.add_argument("--only", default=",".join(CONFIGS),
                   help=f"comma-separated configurations (default all: {','.join(CONFIGS)})")
    p.add_argument("--workloads", default="",
                   help="comma-separated workload keys to run (default all: "
                        + ",".join(w.key for w in workloads()) + ")")
    p.add_argument("--memory-requests", type=int, default=100_000,
                   help="requests of the memory run per configuration (default 100000)")
    p.add_argument("--memory-max-seconds", type=float, default=90,
                   help="bound of the memory run per configuration (default 90)")
    p.add_argument("--no-install", action="store_true", help="do not apt-get wrk / mod_wsgi")
    p.add_argument("--standalone-user", default=WWW_USER,
                   help="account that runs the `standalone` HTTP server (default www-data)")
    p.add_argument("--output", default=os.path.join(HERE, "results", "latest.md"),
                   help="where the tables are written too (default bench/results/latest.md)")
    args = p.parse_args()
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    keys = [w.key for w in workloads()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()] or keys
    bad = [c for c in args.only if c not in CONFIGS] + [w for w in args.workloads if w not in keys]
    if bad or args.rounds < 1 or args.duration < 1:
        p.error(f"unknown configuration(s)/workload(s) {bad}" if bad else "rounds and duration must be >= 1")
    return args


def busy_sample(configs: dict, seconds: float = 2.0) -> str:
    f = ForeignCpu(configs)
    with f:
        time.sleep(seconds)
    top = ", ".join(f"{name} {pct:.0f}%" for pct, name in f.top if pct >= 1)
    return f"{f.percent:.1f}% of the CPUs" + (f" ({top})" if top else "")


def load_avg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    global STANDALONE_USER
    args = parse_args()
    STANDALONE_USER = args.standalone_user

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # SIGINT too: a shell may start us with SIGINT ignored (then Python installs no handler).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    if os.geteuid() != 0:
        print("make bench runs Apache and the programs as www-data: run it as root (or with sudo)",
              file=sys.stderr)
        return 1
    try:
        ensure_dependencies(not args.no_install)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    import_harness()
    os.environ.setdefault("SG_MODULE", os.path.join(REPO, "CModule", ".libs", "mod_swift_gateway.so"))
    os.environ.setdefault("SG_FIXTURE", os.path.join(REPO, ".build", "release", "GatewayFixture"))
    try:
        artifacts = H.find_artifacts()
    except H.ArtifactsMissing as e:
        print(f"bench: {e}\n(`make` builds them)", file=sys.stderr)
        return 1

    configs: dict[str, Config] = {}
    failed: dict[str, str] = {}
    report = Report(args, configs, failed)
    report.load_before = load_avg()
    report.load_after = "?"
    report.busy_before = busy_sample(configs)
    log(f"before the start, other processes used {report.busy_before}")
    interrupted = False
    try:
        # ---- start every configuration
        for name in args.only:
            cfg = CONFIG_CLASSES[name](artifacts)
            configs[name] = cfg
            log(f"starting {name}")
            try:
                cfg.start()
                verify(cfg)
                log(f"{name}: ready on {H.HOST}:{cfg.port}, answers verified")
            except (BenchError, H.ServerStartError, AssertionError, OSError,
                    requests.RequestException) as e:
                failed[name] = f"{type(e).__name__}: {e}" if not isinstance(e, BenchError) else str(e)
                log(f"{name}: FAILED: {failed[name]}")
                diag = cfg.diagnostics()
                if diag:
                    log(diag)
                report.problems.append(f"{name} did not start or answered wrongly: "
                                       + failed[name].replace("\n", " ⏎ ")[:1500])
        live = [n for n in args.only if n not in failed]
        if not live:
            raise BenchError("no configuration started")

        time.sleep(1)
        report.rss["idle"] = {n: read_rss(configs[n]) for n in live if n in GATEWAY_LIKE}

        # ---- warm-up (not recorded)
        for name in live:
            log(f"warm-up {name} (2 s hello, 50 connections)")
            try:
                run_wrk(configs[name].url(configs[name].hello_path), 50, 2, "report.lua")
            except BenchError as e:
                log(f"warm-up {name}: {e}")

        # ---- rounds
        foreign = ForeignCpu(configs)
        wls = [w for w in workloads() if w.key in args.workloads]
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
                    if run.failure:
                        log(f"[round {rnd}/{args.rounds} {done_runs}/{total_runs}] {wl.title}, {name}: "
                            f"FAILED: {run.failure}")
                        report.problems.append(f"round {rnd}, {wl.title}, {name}: {run.failure}")
                    else:
                        log(f"[round {rnd}/{args.rounds} {done_runs}/{total_runs}] {wl.title}, {name}: "
                            f"{run.rps:,.0f} req/s, {run.mibps:,.1f} MiB/s, p50 {run.p50_ms:.2f} ms, "
                            f"p99 {run.p99_ms:.2f} ms"
                            + (f" (other processes used {run.foreign_cpu:.0f}% of the CPUs)"
                               if run.foreign_cpu >= 5 else ""))
                    time.sleep(0.3)

        time.sleep(2)
        report.rss["after"] = {n: read_rss(configs[n]) for n in live if n in GATEWAY_LIKE}

        # ---- >= 100,000 requests, then RSS again
        report.rss["more"] = {}
        for name in [n for n in GATEWAY_LIKE if n in live]:
            rate = report.stat("hello-50", name, "rps")
            log(f"memory run {name}: hello at 50 connections until {args.memory_requests:,} requests "
                f"(at most {args.memory_max_seconds:.0f} s)")
            marks = configs[name].log_marks()
            result = hundred_k(configs[name], args.memory_requests, args.memory_max_seconds,
                               0.0 if math.isnan(rate) else rate)
            report.mem_log_errors[name] = configs[name].new_error_lines(marks)
            report.memruns[name] = result
            if result[2]:
                report.problems.append(f"memory run {name}: {result[2]}")
            log(f"memory run {name}: {result[0]:,} requests in {result[1]:.1f} s {result[2]}")
            time.sleep(2)
            report.rss["more"][name] = read_rss(configs[name])

        # ---- error logs and liveness
        for name in live:
            problem = configs[name].alive_problem()
            if problem:
                report.problems.append(problem)
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
        # ---- stop everything started here (by pid), whatever happened
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            for name in reversed(list(configs)):
                log(f"stopping {name}")
                problems = configs[name].stop()
                for p in problems:
                    log(p)
                report.notes += problems
                configs[name].cleanup()
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


if __name__ == "__main__":
    sys.exit(main())
