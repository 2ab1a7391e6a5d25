"""Harness for the SwiftGateway integration tests.

Everything here drives *real* parts: Debian's /usr/sbin/apache2, the built
mod_swift_gateway.so and the built test fixture program
(Tests/Fixtures/GatewayFixture).  Nothing is mocked.

The pieces:

* ``ApacheServer``: a private server root under /tmp (0755, traversable by
  www-data) holding copies of the module and of the fixture program, a
  generated self-contained httpd.conf, the error log, the pid file and the
  socket directory.  It starts Apache on a free 127.0.0.1 port, waits for
  readiness with bounded polls, finds the gateway's processes through /proc
  and stops everything by pid (SIGTERM, bounded wait, SIGKILL fallback of the
  whole tree, including orphans found by a per-server environment tag).
* process helpers reading /proc (children, environ, RSS, liveness).
* ``duplex_request``: a small raw-socket HTTP/1.1 client that sends the
  request body from one thread while the calling thread reads the response,
  which is what a 200 MiB echo needs (a half-duplex client would deadlock on
  any correct, non-buffering server).
* ``run_load`` / ``BackgroundLoad``: keep-alive HTTP clients (threads with a
  ``requests.Session`` each, as test_keepalive.py's) that send GETs as fast as they get answers, bounded in count and in time, counting every failed request (status
  >= 500 or a connection error) and the worker pids that answered.
* ``note``: records measurements (throughput) for the terminal summary; they
  are printed, never asserted.
* ``ProgramVersions``, ``ScoreboardSampler``, ``LogWatcher``: for rolling reloads
  and scaling, distinct builds of a program installed the ways deploys do, a
  group's scoreboard read every 50 ms, and the moment each error-log line appeared.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import requests

APACHE_BIN = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
HOST = "127.0.0.1"

MIB = 1024 * 1024

# Deadlines (seconds).  They bound waits; nothing asserts how long anything took.
START_TIMEOUT = 30.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0

# Measurements printed in the terminal summary (see conftest.py).
NOTES: list[str] = []


def note(message: str) -> None:
    print(message)
    NOTES.append(message)


# --------------------------------------------------------------------------
# artifacts


class ArtifactsMissing(Exception):
    pass


@dataclass(frozen=True)
class Artifacts:
    module: str
    fixture: str


def _built_file(variable: str, what: str, executable: bool = True) -> tuple[str, str]:
    """(the path in $variable, or "" and what is wrong with it)."""
    path = os.environ.get(variable, "")
    if not path:
        return "", f"{variable} is not set (absolute path of {what})"
    if not os.path.isabs(path) or not os.path.isfile(path):
        return "", f"{variable}={path!r} is not an absolute path of an existing file"
    if executable and not os.access(path, os.X_OK):
        return "", f"{variable}={path!r} is not executable"
    return path, ""


def _missing(problems: list[str], variables: str) -> ArtifactsMissing:
    return ArtifactsMissing(
        "SwiftGateway integration tests cannot run:\n  - " + "\n  - ".join(problems)
        + f"\nRun them through `make test`, or set {variables} yourself.")


def find_artifacts() -> Artifacts:
    """SG_MODULE / SG_FIXTURE, validated.  Raises ArtifactsMissing with a clear text."""
    module, module_problem = _built_file("SG_MODULE", "the built mod_swift_gateway.so", executable=False)
    fixture, fixture_problem = _built_file(
        "SG_FIXTURE", "the built test fixture program, GatewayFixture")
    problems = [p for p in (module_problem, fixture_problem) if p]
    if not os.access(APACHE_BIN, os.X_OK):
        problems.append(f"{APACHE_BIN} is missing (install Debian's apache2)")
    if problems:
        raise _missing(problems, "SG_MODULE and SG_FIXTURE")
    return Artifacts(module=module, fixture=fixture)


def find_example() -> str:
    """SG_EXAMPLE (the built example site, Examples/ExampleSite), validated."""
    example, problem = _built_file("SG_EXAMPLE", "the built example program, ExampleSite")
    if problem:
        raise _missing([problem], "SG_EXAMPLE")
    return example


# --------------------------------------------------------------------------
# /proc helpers


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rfind(")") + 2 :].split()
    return rest[0], int(rest[1])


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie is dead)."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def proc_children(ppid: int) -> list[int]:
    out = []
    for pid in _all_pids():
        st = proc_stat(pid)
        if st is not None and st[1] == ppid and st[0] not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


def proc_descendants(pid: int) -> list[int]:
    by_parent: dict[int, list[int]] = {}
    for p in _all_pids():
        st = proc_stat(p)
        if st is not None:
            by_parent.setdefault(st[1], []).append(p)
    out, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def proc_environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, _, v = item.partition(b"=")
            env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return env


def proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def proc_exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def proc_rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def proc_describe(pid: int) -> str:
    env = proc_environ(pid)
    st = proc_stat(pid)
    return (
        f"pid={pid} state={st[0] if st else '-'} ppid={st[1] if st else '-'} "
        f"exe={proc_exe(pid)!r} role={env.get('SWIFT_GATEWAY_ROLE')!r} "
        f"group={env.get('SWIFT_GATEWAY_GROUP')!r} cmdline={' '.join(proc_cmdline(pid))!r}"
    )


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1,
               message: str = "condition") -> object:
    """Poll predicate until it returns a truthy value; raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


def listen_queue(path: str) -> int:
    """Connections waiting in the backlog of the listening Unix socket at path (ss's Recv-Q)."""
    out = subprocess.run(["ss", "-xlnH"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if path in fields:
            return int(fields[2])
    raise AssertionError(f"{path} is not a listening socket:\n{out}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# the server


class ServerStartError(Exception):
    pass



# ---- make test-asan: a sanitized module in an httpd that is not --------------
# SG_HTTPD_PRELOAD: the sanitizer runtime httpd preloads (it must come first when a module built
# with it is loaded). SG_SANITIZER_LOG_DIR: where the sanitizers write their reports, one file per
# process; a test after which a new one is there fails (conftest.py).
def sanitizer_env() -> dict[str, str]:
    env = {}
    if os.environ.get("SG_HTTPD_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["SG_HTTPD_PRELOAD"]
    log_dir = os.environ.get("SG_SANITIZER_LOG_DIR")
    if log_dir:
        for name, prefix in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
            given = os.environ.get(name, "")
            env[name] = ":".join(filter(None, [given, f"log_path={log_dir}/{prefix}"]))
    return env


_sanitizer_reports_seen: set[str] = set()


def new_sanitizer_reports() -> list[str]:
    """The sanitizer reports written since the last call: each file's name and first lines."""
    log_dir = os.environ.get("SG_SANITIZER_LOG_DIR")
    if not log_dir or not os.path.isdir(log_dir):
        return []
    reports = []
    for name in sorted(os.listdir(log_dir)):
        if name in _sanitizer_reports_seen:
            continue
        _sanitizer_reports_seen.add(name)
        with open(os.path.join(log_dir, name), "rb") as f:
            reports.append(f"{name}:\n" + f.read(6000).decode("utf-8", "replace"))
    return reports

class ApacheServer:
    """A real Apache with a private root under /tmp.  See module docstring."""

    def __init__(self, artifacts: Artifacts | None, name: str = "sg"):
        self.artifacts = artifacts
        self.tag = uuid.uuid4().hex
        self.root = tempfile.mkdtemp(prefix=f"sg-it-{name}-", dir="/tmp")
        try:
            self._populate(artifacts)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _populate(self, artifacts: Artifacts | None) -> None:
        os.chmod(self.root, 0o755)
        self.conf_path = os.path.join(self.root, "httpd.conf")
        self.error_log = os.path.join(self.root, "error.log")
        self.pid_file = os.path.join(self.root, "httpd.pid")
        self.run_dir = os.path.join(self.root, "run")
        self.socket_prefix = os.path.join(self.run_dir, "sockets")
        self.docroot = os.path.join(self.root, "htdocs")
        self.bin_dir = os.path.join(self.root, "bin")
        self.modules_dir = os.path.join(self.root, "modules")
        for d in (self.run_dir, self.docroot, self.bin_dir, self.modules_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        with open(os.path.join(self.docroot, "index.html"), "w") as f:
            f.write(f"harness {self.tag}\n")
        os.chmod(os.path.join(self.docroot, "index.html"), 0o644)
        self.module_path = ""
        self.bin = ""
        if artifacts is not None:
            self.module_path = os.path.join(self.modules_dir, "mod_swift_gateway.so")
            shutil.copy2(artifacts.module, self.module_path)
            os.chmod(self.module_path, 0o755)
            self.bin = self.install_program(artifacts.fixture)
        self.port = 0
        self.pid: int | None = None
        self.with_module = artifacts is not None
        self.extra_modules: tuple[str, ...] = ()
        self.body = ""
        self.stopped = False
        self._known_pids: set[int] = set()

    def install_program(self, source: str) -> str:
        """A copy of the program at source in this root's bin/, readable by www-data; a Python
        stand-in gets fastcgi_wire.py, which it imports, beside it."""
        program = os.path.join(self.bin_dir, os.path.basename(source))
        shutil.copy2(source, program)
        os.chmod(program, 0o755)
        if source.endswith(".py"):
            wire = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastcgi_wire.py")
            shutil.copy2(wire, os.path.join(self.bin_dir, "fastcgi_wire.py"))
            os.chmod(os.path.join(self.bin_dir, "fastcgi_wire.py"), 0o644)
        return program

    # ---- configuration -------------------------------------------------

    def daemon(self, name: str, *options: str) -> str:
        """A SwiftDaemonProcess line carrying this server's tag (env=SG_TEST_TAG=…)."""
        return " ".join(["SwiftDaemonProcess", name, *options, f"env=SG_TEST_TAG={self.tag}"])

    def seed_config(self, django: Iterable[str] = (), admin: Iterable[str] = (),
                    mount: str = "/") -> str:
        """Groups django (3 processes) and django-admin (1, for /admin) serving the fixture at mount."""
        return "\n".join([
            self.daemon("django", "processes=3", "threads=10", *django),
            self.daemon("django-admin", "processes=1", "threads=10", *admin),
            "SwiftProcessGroup django",
            f"SwiftScriptAlias {mount} {self.bin}",
            "<Location /admin>",
            "    SwiftProcessGroup django-admin",
            "</Location>",
        ])

    def fake_program_config(self, mode: str, *options: str) -> str:
        """Group `fake` running fake_fastcgi_program.py in FAKE_MODE=mode, mounted at /fake."""
        program = self.install_program(os.path.join(os.path.dirname(__file__), "fake_fastcgi_program.py"))
        return "\n".join([
            self.daemon("fake", f"program={program}", f"env=FAKE_MODE={mode}", *options),
            "SwiftProcessGroup fake",
            "<Location /fake>",
            "    SetHandler swift-gateway",
            "</Location>",
        ])

    def render_config(self, body: str, port: int) -> str:
        mods = [
            ("mpm_event_module", "mod_mpm_event.so"),
            ("authz_core_module", "mod_authz_core.so"),
            *[(m, f) for m, f in self.extra_modules_pairs()],
        ]
        lines = [f"# generated by Tests/Integration for server tag {self.tag}",
                 f"ServerRoot {self.root}"]
        for mod, so in mods:
            lines.append(f"LoadModule {mod} {APACHE_MODULES}/{so}")
        if self.with_module:
            lines.append(f"LoadModule swift_gateway_module {self.module_path}")
        lines += [
            "User www-data",
            "Group www-data",
            "ServerName 127.0.0.1",
            f"Listen {HOST}:{port}",
            f"PidFile {self.pid_file}",
            f"ErrorLog {self.error_log}",
            "LogLevel info swift_gateway:debug" if self.with_module else "LogLevel info",
            f"DefaultRuntimeDir {self.run_dir}",
            f"DocumentRoot {self.docroot}",
            f"<Directory {self.docroot}>",
            "    Require all granted",
            "</Directory>",
            # A fixed pool of two Apache children: they are never replaced, so
            # the RSS of "the Apache children" is well defined over a test.
            "StartServers 2",
            "ServerLimit 2",
            "ThreadLimit 64",
            "ThreadsPerChild 64",
            "MaxRequestWorkers 128",
            "MinSpareThreads 1",
            "MaxSpareThreads 128",
            "MaxConnectionsPerChild 0",
            "Timeout 120",
            "KeepAlive On",
            "KeepAliveTimeout 5",
            "LimitRequestBody 0",
        ]
        if self.with_module:
            lines.append(f"SwiftSocketPrefix {self.socket_prefix}")
        lines += ["", body, ""]
        return "\n".join(lines)

    def extra_modules_pairs(self) -> list[tuple[str, str]]:
        out = []
        for short in self.extra_modules:   # e.g. "setenvif" → setenvif_module mod_setenvif.so
            out.append((f"{short}_module", f"mod_{short}.so"))
        return out

    def configure(self, body: str, extra_modules: Iterable[str] = (), with_module: bool | None = None,
                  port: int | None = None) -> str:
        self.body = body
        self.extra_modules = tuple(extra_modules)
        if with_module is not None:
            self.with_module = with_module
        self.port = port or free_port()
        with open(self.conf_path, "w") as f:
            f.write(self.render_config(body, self.port))
        os.chmod(self.conf_path, 0o644)
        return self.conf_path

    # ---- running apache2 -----------------------------------------------

    @staticmethod
    def apache_env() -> dict[str, str]:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        env.update(sanitizer_env())
        return env

    def apache2(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [APACHE_BIN, "-d", self.root, "-f", self.conf_path, *args],
            env=self.apache_env(), capture_output=True, text=True, timeout=timeout,
        )

    def configtest(self) -> subprocess.CompletedProcess:
        return self.apache2("-t")

    def start(self, ready_path: str | None = "/", expect_gateway: bool = True) -> "ApacheServer":
        """Start Apache; wait for pid file, TCP accept and (optionally) a 200 from ready_path."""
        if not os.path.exists(self.conf_path):
            raise ServerStartError("configure() first")
        for attempt in range(3):
            proc = self.apache2("-k", "start")
            if proc.returncode == 0:
                break
            text = proc.stdout + proc.stderr + self.error_log_text()
            if "Address already in use" in text and attempt < 2:
                self.configure(self.body, self.extra_modules)   # new free port
                continue
            raise ServerStartError(
                f"apache2 -k start failed rc={proc.returncode}\nstdout:\n{proc.stdout}\n"
                f"stderr:\n{proc.stderr}\nerror.log:\n{self.error_log_tail()}")
        self.stopped = False
        self.pid = int(wait_until(self._read_pid, START_TIMEOUT, message=f"pid file {self.pid_file}"))
        self._known_pids.add(self.pid)
        self._wait_tcp()
        if ready_path is not None:
            self.wait_ready(ready_path, expect_gateway=expect_gateway)
        return self

    def _read_pid(self) -> int | None:
        try:
            with open(self.pid_file) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (FileNotFoundError, ValueError):
            return None

    def _check_parent(self) -> None:
        if self.pid is not None and not pid_alive(self.pid):
            raise ServerStartError(
                f"Apache parent {self.pid} died during startup\nerror.log:\n{self.error_log_tail()}")

    def _wait_tcp(self) -> None:
        def connected() -> bool:
            self._check_parent()
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(connected, START_TIMEOUT, message=f"TCP accept on {HOST}:{self.port}")

    def wait_ready(self, path: str = "/", expect_gateway: bool = True,
                   timeout: float = READY_TIMEOUT) -> requests.Response:
        """Poll path until it answers 200 (from the gateway, when expect_gateway)."""
        last: list[str] = ["no answer yet"]

        def ok() -> requests.Response | None:
            self._check_parent()
            try:
                r = requests.get(self.url(path), timeout=5, headers={"Connection": "close"})
            except requests.RequestException as e:
                last[0] = repr(e)
                return None
            last[0] = f"{r.status_code} {dict(r.headers)}"
            if r.status_code == 200 and (not expect_gateway or "X-Gateway-Pid" in r.headers):
                return r
            return None
        try:
            return wait_until(ok, timeout, interval=0.2, message=f"200 from {path}")  # type: ignore
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer: {last[0]}\nerror.log:\n{self.error_log_tail()}")

    # ---- restarts of Apache ----------------------------------------------

    def restart_with(self, sig: int, timeout: float = START_TIMEOUT) -> float:
        """Send `sig` to the parent (SIGUSR1: `apachectl graceful`, SIGHUP: `apachectl restart`)
        and wait until the new generation runs (httpd logs AH00489, "resuming normal
        operations", once its post_config is done); returns how long that took."""
        assert self.pid is not None and pid_alive(self.pid), "Apache is not running"
        since = self.log_offset()
        started = time.monotonic()
        os.kill(self.pid, sig)
        self.wait_for_log("AH00489", since=since, timeout=timeout)
        return time.monotonic() - started

    def graceful(self, timeout: float = START_TIMEOUT) -> float:
        """`apachectl graceful`; returns the seconds until the new generation runs."""
        return self.restart_with(signal.SIGUSR1, timeout)

    def hard_restart(self, timeout: float = START_TIMEOUT) -> float:
        """`apachectl restart`; returns the seconds until the new generation runs."""
        return self.restart_with(signal.SIGHUP, timeout)

    # ---- stopping ------------------------------------------------------

    def related_processes(self) -> list[int]:
        """Every live process that belongs to this server: descendants of the parent,
        processes carrying the tag in their environment, and anything whose
        executable or command line points into the server root (Apache's own
        children and orphaned gateway processes included)."""
        me = os.getpid()
        out: set[int] = set()
        if self.pid is not None and pid_alive(self.pid):
            out.add(self.pid)
            out.update(p for p in proc_descendants(self.pid) if pid_alive(p))
        for pid in _all_pids():
            if pid == me or pid in out:
                continue
            if not pid_alive(pid):
                continue
            if proc_environ(pid).get("SG_TEST_TAG") == self.tag:
                out.add(pid)
                continue
            exe = proc_exe(pid)
            if exe.startswith(self.root + "/"):
                out.add(pid)
                continue
            cmd = proc_cmdline(pid)
            if cmd and (cmd[0].startswith(self.root + "/") or
                        (os.path.basename(cmd[0]) == "apache2" and self.root in cmd)):
                out.add(pid)
        out.discard(me)
        return sorted(out)

    def stop(self, graceful_timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the parent, wait (bounded) for it and its tree, then SIGKILL leftovers."""
        if self.pid is None:
            return
        tree = set(self.related_processes())
        if pid_alive(self.pid):
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            wait_until(lambda: not pid_alive(self.pid), graceful_timeout, message="Apache parent exit")
            wait_until(lambda: not any(pid_alive(p) for p in tree | set(self.related_processes())),
                       10, message="server processes exit")
        except AssertionError:
            self.kill_all()
        self.stopped = True

    def stop_everything(self) -> list[str]:
        """stop() if it runs, then SIGKILL of whatever is left; the problems met (never raises)."""
        problems = []
        if self.pid is not None and not self.stopped:
            try:
                self.stop()
            except Exception as e:  # noqa: BLE001 - reported by the caller
                problems.append(f"stopping {self.root}: {e!r}")
        leftovers = self.kill_all()
        if leftovers:
            problems.append(f"had to SIGKILL leftover processes {leftovers} of {self.root}")
        return problems

    def kill_all(self) -> list[int]:
        """SIGKILL every process of this server (repeat until none is left, bounded)."""
        killed: list[int] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            procs = self.related_processes()
            if not procs:
                break
            for p in procs:
                try:
                    os.kill(p, signal.SIGKILL)
                    killed.append(p)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        return killed

    def cleanup(self) -> None:
        if os.environ.get("SG_KEEP_SERVER_ROOT"):
            print(f"keeping server root {self.root}")
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- logs ----------------------------------------------------------

    def error_log_text(self, since: int = 0) -> str:
        try:
            with open(self.error_log, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        try:
            return os.path.getsize(self.error_log)
        except FileNotFoundError:
            return 0

    def error_log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.error_log_text().splitlines()[-lines:])

    def wait_for_log(self, needle: str | re.Pattern, since: int = 0, timeout: float = 10) -> str:
        """Return the first error-log line (after byte offset since) matching needle."""
        def find() -> str | None:
            for line in self.error_log_text(since).splitlines():
                if (needle.search(line) if isinstance(needle, re.Pattern) else needle in line):
                    return line
            return None
        try:
            return wait_until(find, timeout, interval=0.1, message=f"error log line matching {needle!r}")  # type: ignore
        except AssertionError as e:
            raise AssertionError(f"{e}\nerror.log since offset {since}:\n"
                                 + "\n".join(self.error_log_text(since).splitlines()[-40:]))

    # ---- processes -----------------------------------------------------

    def supervisors(self) -> dict[str, int]:
        """group name -> supervisor pid (children of the Apache parent with ROLE=supervisor)."""
        assert self.pid is not None
        out = {}
        for child in proc_children(self.pid):
            env = proc_environ(child)
            if env.get("SWIFT_GATEWAY_ROLE") == "supervisor":
                out[env.get("SWIFT_GATEWAY_GROUP", "?")] = child
        return out

    def workers(self, group: str) -> list[int]:
        sup = self.supervisors().get(group)
        if sup is None:
            return []
        return [p for p in proc_children(sup)
                if proc_environ(p).get("SWIFT_GATEWAY_ROLE") == "worker"]

    def apache_children(self) -> list[int]:
        """Apache's own (request-serving) children."""
        assert self.pid is not None
        out = []
        for child in proc_children(self.pid):
            if "SWIFT_GATEWAY_ROLE" in proc_environ(child):
                continue
            if proc_exe(child) == APACHE_BIN or os.path.basename(proc_exe(child)) == "apache2":
                out.append(child)
        return out

    def socket_files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(glob.escape(self.socket_prefix), "**", "*.sock"),
                                recursive=True))

    def group_socket(self, group: str) -> str:
        pattern = re.compile(rf"^{self.pid}\.(\d+)\.{re.escape(group)}\.sock$")
        found = [p for p in self.socket_files() if pattern.match(os.path.basename(p))]
        assert len(found) == 1, (f"expected one socket <apache-pid>.<generation>.{group}.sock "
                                 f"under {self.socket_prefix}, found {self.socket_files()}")
        return found[0]

    def wait_workers(self, group: str, count: int, timeout: float = READY_TIMEOUT) -> list[int]:
        def enough() -> list[int] | None:
            self._check_parent()
            w = self.workers(group)
            return w if len(w) == count else None
        try:
            return wait_until(enough, timeout, message=f"{count} workers in group {group}")  # type: ignore
        except AssertionError as e:
            raise AssertionError(f"{e}; supervisors={self.supervisors()} workers={self.workers(group)}\n"
                                 f"error.log:\n{self.error_log_tail()}")

    def wait_distinct_pids(self, path: str, count: int, timeout: float = READY_TIMEOUT,
                           burst: int = 30) -> set[int]:
        """Send concurrent bursts to path until `count` distinct X-Gateway-Pid values answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            results = parallel_get(self.url(path), burst, concurrency=burst)
            for r in results:
                if isinstance(r, requests.Response) and r.status_code == 200 and "X-Gateway-Pid" in r.headers:
                    seen.add(int(r.headers["X-Gateway-Pid"]))
            if len(seen) >= count:
                return seen
            time.sleep(0.2)
        raise AssertionError(f"only {len(seen)} distinct worker pids answered {path} within "
                             f"{timeout:.0f}s: {sorted(seen)}\nerror.log:\n{self.error_log_tail()}")

    # ---- HTTP ----------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", REQUEST_TIMEOUT)
        headers = {"Connection": "close", **kw.pop("headers", {})}
        return requests.get(self.url(path), headers=headers, **kw)


def parallel_get(url: str, count: int, concurrency: int = 16, timeout: float = REQUEST_TIMEOUT,
                 data: bytes | None = None) -> list[requests.Response | Exception]:
    """count GETs (POSTs of data, when given) with `concurrency` threads; returns Responses
    (body read) or exceptions."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> requests.Response | Exception:
        try:
            r = requests.request("GET" if data is None else "POST", url, data=data, timeout=timeout,
                                 headers={"Connection": "close"})
            _ = r.content
            return r
        except Exception as e:   # noqa: BLE001 - reported by the caller
            return e
    with ThreadPoolExecutor(max_workers=concurrency) as ex:
        return list(ex.map(one, range(count)))


# --------------------------------------------------------------------------
# page parsing


def parse_text_page(body: str) -> dict[str, str]:
    """The fixture's default page: 'key: value' lines after the title line."""
    lines = body.splitlines()
    assert lines and lines[0] == "SwiftGateway test fixture", f"unexpected page body: {body[:300]!r}"
    out = {}
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
        elif line.endswith(":"):
            out[line[:-1]] = ""
    return out


# --------------------------------------------------------------------------
# data streams


def pattern_block(size: int = MIB) -> bytes:
    """`size` bytes of the /bytes pattern starting at offset 0 (size a multiple of 256)."""
    assert size % 256 == 0
    return bytes(range(256)) * (size // 256)


def expected_pattern_digest(n: int) -> str:
    h = hashlib.sha256()
    block = pattern_block(MIB)
    full, rest = divmod(n, MIB)
    for _ in range(full):
        h.update(block)
    h.update(block[:rest])
    return h.hexdigest()


class RandomUpload:
    """Iterable of random chunks (never all in memory) with a rolling sha256 of what was produced."""

    def __init__(self, total: int, chunk_sizes: Iterable[int] | None = None):
        self.total = total
        self.sha = hashlib.sha256()
        self.produced = 0
        self._sizes = list(chunk_sizes) if chunk_sizes is not None else None

    def __iter__(self) -> Iterator[bytes]:
        i = 0
        while self.produced < self.total:
            if self._sizes:
                size = self._sizes[i % len(self._sizes)]
            else:
                size = MIB
            size = min(size, self.total - self.produced)
            chunk = os.urandom(size)
            self.sha.update(chunk)
            self.produced += size
            i += 1
            yield chunk


# --------------------------------------------------------------------------
# full-duplex HTTP/1.1 client


@dataclass
class DuplexResult:
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    received: int = 0
    sha256: str = ""
    sent: int = 0
    send_error: str = ""
    error: str = ""
    seconds: float = 0.0


class _Progress:
    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


def duplex_request(port: int, method: str, path: str, body: Iterable[bytes],
                   content_length: int | None, headers: dict[str, str] | None = None,
                   stall_timeout: float = 60.0, total_timeout: float = 900.0) -> DuplexResult:
    """Send the body from a thread while reading the response here.

    content_length None → Transfer-Encoding: chunked (unknown length).
    A direction with no progress for stall_timeout seconds ends the exchange
    with result.error describing the stall (that is how a deadlock shows).
    The response body is hashed, never kept.
    """
    res = DuplexResult()
    prog = _Progress()
    sock = socket.create_connection((HOST, port), timeout=stall_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close",
            "Content-Type: application/octet-stream"]
    if content_length is None:
        head.append("Transfer-Encoding: chunked")
    else:
        head.append(f"Content-Length: {content_length}")
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}")
    started = time.monotonic()
    deadline = started + total_timeout

    def sender() -> None:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            for chunk in body:
                if not chunk:
                    continue
                if content_length is None:
                    sock.sendall(b"%x\r\n" % len(chunk))
                    sock.sendall(chunk)
                    sock.sendall(b"\r\n")
                else:
                    sock.sendall(chunk)
                prog.sent += len(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError("total timeout while sending")
            if content_length is None:
                sock.sendall(b"0\r\n\r\n")
        except Exception as e:   # noqa: BLE001 - reported in the result
            res.send_error = f"{type(e).__name__}: {e} (after {prog.sent} body bytes)"

    t = threading.Thread(target=sender, name="duplex-sender", daemon=True)
    t.start()
    h = hashlib.sha256()
    try:
        f = sock.makefile("rb", buffering=MIB)
        status_line = f.readline(65536).decode("latin-1").rstrip("\r\n")
        if not status_line:
            raise ConnectionError("connection closed before a status line")
        parts = status_line.split(" ", 2)
        res.status = int(parts[1])
        res.reason = parts[2] if len(parts) > 2 else ""
        while True:
            line = f.readline(65536).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            k, _, v = line.partition(":")
            res.headers[k.strip().lower()] = v.strip()

        def consume(n: int) -> None:
            while n > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("total timeout while receiving")
                data = f.read1(min(n, MIB))
                if not data:
                    raise ConnectionError(f"connection closed with {n} body bytes outstanding")
                h.update(data)
                prog.received += len(data)
                n -= len(data)

        te = res.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            while True:
                size_line = f.readline(1024).decode("latin-1").strip()
                if not size_line:
                    raise ConnectionError("connection closed inside chunked body (no final chunk)")
                size = int(size_line.split(";")[0], 16)
                if size == 0:
                    while f.readline(65536).strip():   # trailers
                        pass
                    break
                consume(size)
                if f.read(2) != b"\r\n":
                    raise ConnectionError("bad chunk terminator")
        elif "content-length" in res.headers:
            consume(int(res.headers["content-length"]))
        else:
            while True:
                data = f.read1(MIB)
                if not data:
                    break
                h.update(data)
                prog.received += len(data)
    except socket.timeout:
        res.error = (f"stalled: no progress for {stall_timeout:.0f}s "
                     f"(sent {prog.sent} body bytes, received {prog.received})")
    except Exception as e:   # noqa: BLE001 - reported in the result
        res.error = f"{type(e).__name__}: {e} (sent {prog.sent}, received {prog.received})"
    finally:
        t.join(timeout=stall_timeout + 5)
        try:
            sock.close()
        except OSError:
            pass
    res.sent = prog.sent
    res.received = prog.received
    res.sha256 = h.hexdigest()
    res.seconds = time.monotonic() - started
    return res


# --------------------------------------------------------------------------
# RSS monitoring


class RssMonitor:
    """Samples VmRSS of a changing set of pids in a thread; records the peak per pid."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.1):
        self._pids = pids
        self.interval = interval
        self.baseline: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.final: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)

    def _sample(self) -> dict[int, int]:
        out = {}
        for pid in self._pids():
            rss = proc_rss_bytes(pid)
            if rss is not None:
                out[pid] = rss
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, rss in self._sample().items():
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssMonitor":
        self.baseline = self._sample()
        assert self.baseline, "no process to monitor"
        self.peak = dict(self.baseline)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.final = self._sample()
        for pid, rss in self.final.items():
            self.peak[pid] = max(self.peak.get(pid, 0), rss)

    def growth(self) -> dict[int, int]:
        """Peak minus baseline per pid.  A pid that appeared later is compared with the
        largest baseline (it had no 'before')."""
        ref = max(self.baseline.values())
        return {pid: peak - self.baseline.get(pid, ref) for pid, peak in self.peak.items()}

    def report(self) -> str:
        return ", ".join(
            f"{pid}: {self.baseline.get(pid, 0) / MIB:.1f}→peak {self.peak[pid] / MIB:.1f}"
            f"→end {self.final.get(pid, 0) / MIB:.1f} MiB" for pid in sorted(self.peak))


# --------------------------------------------------------------------------
# load


@dataclass
class LoadResult:
    """What a load run saw.  `failures` are requests answered with a status >= 500 or lost
    to a connection error (each with what happened); `pids` counts the answers per
    X-Gateway-Pid."""
    requests: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    pids: collections.Counter = field(default_factory=collections.Counter)
    seconds: float = 0.0
    timed_out: bool = False

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (f"{self.requests} requests in {self.seconds:.1f}s ({rate:.0f}/s), "
                f"{len(self.failures)} failed, {len(self.pids)} distinct worker pids, "
                f"statuses {dict(self.statuses)}")


def run_load(port: int, path: str = "/hello", total: int = 1000, concurrency: int = 20,
             deadline: float = REQUEST_TIMEOUT, stop: threading.Event | None = None,
             observe: Callable[[int, float, requests.Response], None] | None = None) -> LoadResult:
    """`concurrency` clients (threads, each a keep-alive `requests.Session`, as a browser keeps
    its connection) send GETs of `path` until `total` were sent, `stop` is set or `deadline`
    seconds passed (then `timed_out`); returns what they saw. `observe(client, sent, response)`,
    when given, is called in the client's thread with each response (`sent`: the monotonic
    time the request was sent)."""
    result = LoadResult()
    lock = threading.Lock()
    issued = 0
    started = time.monotonic()
    end = started + deadline

    def take() -> bool:
        nonlocal issued
        with lock:
            if time.monotonic() >= end:
                result.timed_out = True
                return False
            if issued >= total or (stop is not None and stop.is_set()):
                return False
            issued += 1
            return True

    def client(index: int) -> None:
        session = requests.Session()
        url = f"http://{HOST}:{port}{path}"
        while take():
            sent = time.monotonic()
            try:
                r = session.get(url, timeout=30)
                status, pid = r.status_code, r.headers.get("X-Gateway-Pid")
            except requests.RequestException as e:
                with lock:
                    result.requests += 1
                    result.failures.append(repr(e))
                continue
            if observe is not None:
                observe(index, sent, r)
            with lock:
                result.requests += 1
                result.statuses[status] += 1
                if status >= 500:
                    result.failures.append(f"status {status}")
                if pid is not None:
                    result.pids[int(pid)] += 1
        session.close()

    threads = [threading.Thread(target=client, args=(i,), name=f"load-{i}", daemon=True)
               for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=deadline + 60)
    result.seconds = time.monotonic() - started
    return result


class BackgroundLoad:
    """run_load in a thread, from `with` until the block ends (or `total` / `deadline`)."""

    def __init__(self, port: int, path: str = "/hello", concurrency: int = 10,
                 total: int = 10_000_000, deadline: float = 120.0,
                 observe: Callable[[int, float, requests.Response], None] | None = None):
        self._stop = threading.Event()
        self._arguments = (port, path, total, concurrency, deadline, self._stop, observe)
        self.result: LoadResult | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        self.result = run_load(*self._arguments)

    def __enter__(self) -> "BackgroundLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert self.result is not None, "the load thread did not end"


# --------------------------------------------------------------------------
# program versions, the scoreboard and the error log over time (test_reload.py,
# test_scaling.py)


def file_identity(path: str) -> str:
    """'<st_dev>:<st_ino>' of path: what the fixture's /version answers for its executable."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


class ProgramVersions:
    """Versions of a group's program, each a distinct copy (inode) of one build, installed
    at the group's program path the ways deploys do: `mv` (rename over), `cp -f`, `install`,
    or written in place in pieces as a linker writes its output.

    Every file ever installed keeps a hard link under ROOT/versions/, so its inode is never
    freed and given to a later file: a worker's /version answer names one version for good
    (`version_of`). The program installed when the server started is version 0."""

    METHODS = ("rename", "copy", "install", "pieces")

    def __init__(self, srv: "ApacheServer", program: str, source: str):
        self.program = program
        self.source = source
        self.directory = os.path.join(srv.root, "versions")
        os.makedirs(self.directory, exist_ok=True)
        os.chmod(self.directory, 0o755)
        self.by_identity: dict[str, int | str] = {}
        self._keep(0)

    def _keep(self, version: int | str) -> None:
        """A hard link to what the program path holds now, which is `version`."""
        identity = file_identity(self.program)
        assert identity not in self.by_identity, (
            f"{self.program} holds the inode of version {self.by_identity.get(identity)!r} again")
        os.link(self.program, os.path.join(self.directory, f"installed-{len(self.by_identity)}"))
        self.by_identity[identity] = version

    def version_of(self, answer: str) -> int | str | None:
        """The version whose file answered /version with `answer`, or None."""
        return self.by_identity.get(answer.strip())

    def build(self, version: int) -> str:
        """A fresh copy of the program for `version` (its own inode), not installed yet."""
        path = os.path.join(self.directory, f"build-{version}")
        shutil.copy2(self.source, path)
        os.chmod(path, 0o755)
        return path

    def install(self, version: int, method: str = "rename", pause: float = 0.3) -> None:
        """Install a fresh copy of the program as `version` at the program path by `method`:
        - rename: `mv` of a copy over the program path (the old inode lives on in the
          workers that run it);
        - copy: `cp -f`: a plain `cp` onto an executable that runs fails with ETXTBSY (the
          kernel refuses to open it for writing), `-f` then removes it and writes a new file;
        - install: `install -m 0755`, which does the same as `cp -f` (a file that nothing
          runs, both would overwrite in place: same inode, which `_keep` refuses);
        - pieces: remove it, write the first half of a new file, `pause` seconds, the rest,
          then chmod +x, as a linker writes its output: a poll in the middle sees a file
          that is not the whole program."""
        if method == "rename":
            built = self.build(version)
            os.rename(built, self.program)
        elif method == "copy":
            built = self.build(version)
            subprocess.run(["cp", "-f", built, self.program], check=True, capture_output=True)
        elif method == "install":
            built = self.build(version)
            subprocess.run(["install", "-m", "0755", built, self.program], check=True, capture_output=True)
        elif method == "pieces":
            with open(self.source, "rb") as f:
                data = f.read()
            os.unlink(self.program)
            fd = os.open(self.program, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                half = len(data) // 2
                os.write(fd, data[:half])
                time.sleep(pause)   # the linker's pause, not a wait for anything
                view = memoryview(data)[half:]
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.chmod(self.program, 0o755)
        else:
            raise ValueError(f"unknown method {method!r}; one of {self.METHODS}")
        self._keep(version)

    def install_script(self, label: str, text: str) -> None:
        """A shell script (a build that cannot serve) renamed over the program path."""
        path = os.path.join(self.directory, f"script-{len(self.by_identity)}")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        os.rename(path, self.program)
        self._keep(label)


def build_scoreboard_dump(directory: str) -> str:
    """Tests/Fixtures/scoreboard_dump.c built with cc into directory (as test_limits.py does)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    program = os.path.join(directory, "scoreboard_dump")
    build = subprocess.run(
        ["cc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror",
         "-I", os.path.join(repo, "Sources", "CSwiftGatewayLinux", "include"),
         "-o", program, os.path.join(repo, "Tests", "Fixtures", "scoreboard_dump.c")],
        capture_output=True, text=True)
    assert build.returncode == 0, f"cc failed:\n{build.stdout}{build.stderr}"
    return program


def scoreboard_file(supervisor: int) -> str | None:
    """/proc/SUPERVISOR/fd/N of the group's scoreboard memfd, or None."""
    try:
        descriptors = os.listdir(f"/proc/{supervisor}/fd")
    except OSError:
        return None
    for fd in descriptors:
        try:
            target = os.readlink(f"/proc/{supervisor}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/memfd:swift-gateway-scoreboard"):
            return f"/proc/{supervisor}/fd/{fd}"
    return None


def read_scoreboard(dump: str, board: str) -> dict | None:
    """The board as scoreboard_dump prints it, or None when it cannot be read."""
    import json
    out = subprocess.run([dump, board], capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout) if out.returncode == 0 else None


def accepting_workers(board: dict) -> list[dict]:
    """The board's workers that accept: state ready, accepting since a time."""
    return [w for w in board["workers"] if w["pid"] != 0 and w["state"] == "ready" and w["accepting_since"] > 0]


@dataclass
class BoardSample:
    at: float                    # monotonic time of the read
    accepting: int               # workers ready and accepting
    pids: tuple[int, ...]        # live workers (any state)
    states: tuple[str, ...]
    confirmed_low: bool = False  # below the minimum in this read and in an immediate re-read


def group_supervisor(apache_pid: int, group: str) -> int | None:
    """The supervisor of `group` among the children of Apache's parent, or None."""
    for child in proc_children(apache_pid):
        env = proc_environ(child)
        if env.get("SWIFT_GATEWAY_ROLE") == "supervisor" and env.get("SWIFT_GATEWAY_GROUP") == group:
            return child
    return None


def group_workers(supervisor: int) -> list[int]:
    """The live workers of a supervisor, from /proc/SUPERVISOR/task/*/children: a few reads,
    where ApacheServer.workers reads every process's stat (which takes seconds while a load's
    client threads hold the GIL)."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{supervisor}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{supervisor}/task/{task}/children") as f:
                children += [int(pid) for pid in f.read().split()]
        except OSError:
            continue
    return sorted(p for p in children
                  if pid_alive(p) and proc_environ(p).get("SWIFT_GATEWAY_ROLE") == "worker")


# The watchers below run in processes of their own: the load's client threads hold the test
# process's GIL most of the time, and a thread that waits for it after each read of /proc
# would sample every few hundred milliseconds instead of every few tens. They write what they
# see, stamped with CLOCK_MONOTONIC (one clock for every process), to a file the test reads.


def _watcher(target: Callable[..., None], *arguments: object):
    """(process, stop event) of target(*arguments, stop) started in a fresh interpreter."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=target, args=(*arguments, stop), daemon=True)
    process.start()
    return process, stop


def _sample_board(apache_pid: int, group: str, dump: str, minimum: int, interval: float,
                  out_path: str, stop) -> None:
    """ScoreboardSampler's process: a JSON line per read of the board, "unreadable" when none."""
    import json
    board_file: str | None = None

    def read() -> dict | None:
        nonlocal board_file
        board = read_scoreboard(dump, board_file) if board_file else None
        if board is None:   # first read, or the supervisor changed: find the board again
            supervisor = group_supervisor(apache_pid, group)
            board_file = scoreboard_file(supervisor) if supervisor else None
            board = read_scoreboard(dump, board_file) if board_file else None
        return board
    with open(out_path, "w") as out:
        while not stop.is_set():
            board = read()
            if board is None:
                out.write("unreadable\n")
            else:
                live = [w for w in board["workers"] if w["pid"] != 0]
                accepting = len(accepting_workers(board))
                low = False
                if accepting < minimum:
                    again = read()
                    low = again is None or len(accepting_workers(again)) < minimum
                out.write(json.dumps([time.monotonic(), accepting, [w["pid"] for w in live],
                                      [w["state"] for w in live], low]) + "\n")
            out.flush()
            stop.wait(interval)


class ScoreboardSampler:
    """Reads a group's scoreboard every `interval` seconds, in a process of its own
    (scoreboard_dump). A read with fewer than `minimum` accepting workers is read again at
    once, and counts as low only if that read is low too: the dump reads entries one after
    the other, so a read that crosses a worker handing over to another can miss both."""

    def __init__(self, srv: "ApacheServer", group: str, dump: str, minimum: int = 0,
                 interval: float = 0.05):
        self._srv, self._group, self._dump = srv, group, dump
        self.minimum = minimum
        self.interval = interval
        self.samples: list[BoardSample] = []
        self.unreadable = 0
        self._out = os.path.join(srv.root, f"board-samples-{uuid.uuid4().hex[:8]}.jsonl")
        self._process = None
        self._stop = None

    def __enter__(self) -> "ScoreboardSampler":
        """Starts sampling once `minimum` workers accept (a group's first workers may still be
        starting when the first of them has answered)."""
        def settled() -> bool:
            supervisor = self._srv.supervisors().get(self._group)
            board_file = scoreboard_file(supervisor) if supervisor else None
            board = read_scoreboard(self._dump, board_file) if board_file else None
            return board is not None and len(accepting_workers(board)) >= self.minimum
        wait_until(settled, READY_TIMEOUT, interval=0.05,
                   message=f"{self.minimum} accepting workers of group {self._group} on the scoreboard")
        assert self._srv.pid is not None
        self._process, self._stop = _watcher(_sample_board, self._srv.pid, self._group, self._dump,
                                             self.minimum, self.interval, self._out)
        return self

    def __exit__(self, *exc: object) -> None:
        import json
        assert self._process is not None and self._stop is not None
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        with open(self._out) as f:
            for line in f:
                if not line.endswith("\n"):
                    continue
                if line.strip() == "unreadable":
                    self.unreadable += 1
                    continue
                at, accepting, pids, states, low = json.loads(line)
                self.samples.append(BoardSample(at, accepting, tuple(pids), tuple(states), low))

    def low(self) -> list[BoardSample]:
        return [s for s in self.samples if s.confirmed_low]

    def summary(self) -> str:
        counts = collections.Counter(s.accepting for s in self.samples)
        span = self.samples[-1].at - self.samples[0].at if len(self.samples) > 1 else 0.0
        return (f"{len(self.samples)} scoreboard samples in {span:.1f}s (accepting workers: "
                f"{dict(sorted(counts.items()))}), {sum(s.accepting < self.minimum for s in self.samples)} "
                f"below {self.minimum} once, {len(self.low())} confirmed, {self.unreadable} unreadable")


def _follow_log(path: str, offset: int, out_path: str, interval: float, stop) -> None:
    """LogWatcher's process: each complete line of the log after offset, as
    "<monotonic time first seen> <line>"."""
    partial = b""
    with open(out_path, "wb") as out:
        while True:
            stopping = stop.is_set()
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            if data:
                offset += len(data)
                seen = b"%.6f " % time.monotonic()
                *complete, partial = (partial + data).split(b"\n")
                out.write(b"".join(seen + line + b"\n" for line in complete))
                out.flush()
            if stopping:
                return
            stop.wait(interval)


class LogWatcher:
    """Follows the error log from an offset, in a process of its own, noting the monotonic time
    each line was first seen (every 20 ms): the supervisor's lines carry no time of their own
    (Apache writes a piped stderr line as it comes)."""

    def __init__(self, srv: "ApacheServer", since: int = 0, interval: float = 0.02):
        self._srv = srv
        self._since = since
        self.interval = interval
        self.lines: list[tuple[float, str]] = []
        self._out = os.path.join(srv.root, f"log-lines-{uuid.uuid4().hex[:8]}.txt")
        self._read = 0
        self._process = None
        self._stop = None

    def _collect(self) -> None:
        try:
            with open(self._out, "rb") as f:
                f.seek(self._read)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1   # complete lines only
        self._read += end
        for record in data[:end].splitlines():
            seen, _, line = record.partition(b" ")
            self.lines.append((float(seen), line.decode("utf-8", "replace")))

    def __enter__(self) -> "LogWatcher":
        self._process, self._stop = _watcher(_follow_log, self._srv.error_log, self._since, self._out,
                                             self.interval)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None and self._stop is not None
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self._collect()

    def find(self, pattern: re.Pattern) -> list[tuple[float, str]]:
        """(time seen, line) of every line so far that matches pattern."""
        self._collect()
        return [(t, line) for t, line in self.lines if pattern.search(line)]

    def wait_for(self, pattern: re.Pattern, count: int = 1, timeout: float = 30) -> list[tuple[float, str]]:
        """Wait until `count` lines match; all of them."""
        try:
            return wait_until(lambda: (found := self.find(pattern)) and len(found) >= count and found,
                              timeout, interval=0.02, message=f"{count} error log line(s) matching {pattern.pattern!r}")  # type: ignore
        except AssertionError as e:
            tail = "\n".join(line for _, line in self.lines[-40:])
            raise AssertionError(f"{e}\nerror.log since the watch began (last 40 lines):\n{tail}") from None


# --------------------------------------------------------------------------
# the program by itself, and nginx in front of it (test_elsewhere.py)


PROGRAM_USER = "www-data"   # who runs a program started by hand: nginx's workers and Apache's
                            # children, also www-data, must be able to connect to its socket
NGINX_BIN = "/usr/sbin/nginx"


def user_ids(user: str) -> tuple[int, int]:
    """(uid, gid) of the account `user`."""
    import pwd
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


class ProgramExited(ServerStartError):
    """A program started by hand ended before it was ready."""

    def __init__(self, message: str, arguments: list[str], returncode: int):
        super().__init__(message)
        self.arguments = arguments
        self.returncode = returncode


class StandaloneProgram:
    """A SwiftGateway program started by hand (`--fastcgi ADDRESS` or `--http HOST:PORT`) as an
    unprivileged user, its output in a log file; stopped by its pid (SIGTERM, then SIGKILL)."""

    def __init__(self, program: str, arguments: list[str], directory: str, name: str,
                 user: str = PROGRAM_USER):
        self.program, self.arguments, self.user = program, arguments, user
        self.log = os.path.join(directory, f"{name}.log")
        uid, gid = user_ids(user)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [program, *arguments], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=directory, env={"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": directory},
                user=uid, group=gid, extra_groups=[], start_new_session=True)

    def output(self) -> str:
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            raise ProgramExited(f"{self.program} {' '.join(self.arguments)} exited with status "
                                f"{self.proc.returncode}:\n{self.output()[-3000:]}",
                                self.arguments, self.proc.returncode)

    def wait_socket(self, path: str) -> None:
        """Until a connection to the Unix socket at path is accepted."""
        def connects() -> bool:
            self.check_running()
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1)
                    s.connect(path)
                return True
            except OSError:
                return False
        wait_until(connects, START_TIMEOUT, message=f"{self.program} accepting on {path}")

    def wait_port(self, port: int) -> None:
        def connects() -> bool:
            self.check_running()
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(connects, START_TIMEOUT, message=f"{self.program} accepting on {HOST}:{port}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class NginxServer:
    """A real nginx (Debian's /usr/sbin/nginx) with a private prefix under `root`: its own
    generated nginx.conf, pid file, error log and temporary directories, listening on a free
    127.0.0.1 port. The master runs as root in the foreground (a child of the test, `daemon
    off`), its workers as www-data; stopped by its pid (SIGTERM, bounded wait, then SIGKILL)."""

    def __init__(self, root: str):
        self.prefix = os.path.join(root, "nginx")
        os.makedirs(self.prefix)
        os.chmod(self.prefix, 0o755)
        uid, gid = user_ids(PROGRAM_USER)
        self.temp = os.path.join(self.prefix, "temp")
        os.makedirs(self.temp)
        os.chown(self.temp, uid, gid)   # request bodies nginx buffers go here, written by workers
        self.conf_path = os.path.join(self.prefix, "nginx.conf")
        self.pid_file = os.path.join(self.prefix, "nginx.pid")
        self.error_log = os.path.join(self.prefix, "error.log")
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def configure(self, server_body: str) -> None:
        self.port = free_port()
        t = self.temp
        text = "\n".join([
            "# generated by Tests/Integration (NginxServer)",
            f"user {PROGRAM_USER};",
            "worker_processes 2;",
            "daemon off;",
            f"pid {self.pid_file};",
            f"error_log {self.error_log} info;",
            "events { worker_connections 512; }",
            "http {",
            "    access_log off;",
            f"    client_body_temp_path {t}/body;",
            f"    fastcgi_temp_path {t}/fastcgi;",
            f"    proxy_temp_path {t}/proxy;",
            f"    uwsgi_temp_path {t}/uwsgi;",
            f"    scgi_temp_path {t}/scgi;",
            "    server {",
            f"        listen {HOST}:{self.port};",
            "        server_name localhost;",
            "        client_max_body_size 0;",
            *("        " + line for line in server_body.splitlines()),
            "    }",
            "}",
            ""])
        with open(self.conf_path, "w") as f:
            f.write(text)

    def start(self) -> "NginxServer":
        test = subprocess.run([NGINX_BIN, "-t", "-p", self.prefix, "-c", self.conf_path, "-e", self.error_log],
                              capture_output=True, text=True, timeout=30)
        if test.returncode != 0:
            raise ServerStartError(f"nginx -t failed:\n{test.stderr}\n{open(self.conf_path).read()}")
        self.proc = subprocess.Popen([NGINX_BIN, "-p", self.prefix, "-c", self.conf_path, "-e", self.error_log],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

        def accepting() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerStartError(f"nginx exited with {self.proc.returncode}:\n{self.error_log_text()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(accepting, START_TIMEOUT, message=f"nginx accepting on {HOST}:{self.port}")
        return self

    def error_log_text(self) -> str:
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM (fast shutdown: SIGQUIT would wait for every open connection) to the master
        by its pid, bounded wait, then SIGKILL of it and its workers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        workers = proc_children(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in workers:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
