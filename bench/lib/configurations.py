"""make bench's configurations: each one a private server on 127.0.0.1 that answers the
workloads' requests (README.md, "The configurations"), its processes, logs and checks."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time

import requests
import sg_harness as H

from lib.base import BENCH, DOWNLOAD_BYTES, HELLO, MIB, REPO, UPLOAD_BYTES, WWW_USER, BenchError, log
from lib.workloads import CONFIGS

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


class Config:
    name = ""
    has_download = False
    has_upload = False
    hello_path = "/hello"
    download_path = f"/bytes?n={DOWNLOAD_BYTES}"
    upload_path = "/upload"
    program_label = ""     # the process of a program started here (not by Apache), in the tables
    answers_with_pid = True   # a gateway configuration's /hello carries X-Gateway-Pid

    def __init__(self, artifacts):
        self.artifacts = artifacts
        self.srv = None            # sg_harness.ApacheServer (also used as a private root)
        self.proc: subprocess.Popen | None = None   # a program started here (not by Apache)
        self.proc_user = ""
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
            problems += [f"{self.name}: {problem}" for problem in self.srv.stop_everything()]
        return problems

    def shut_down(self) -> list[str]:
        """stop(), each problem logged, then the private root removed; returns the problems."""
        problems = self.stop()
        for problem in problems:
            log(problem)
        if self.srv is not None:
            self.srv.cleanup()
        return problems

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
        if self.program_label and self.proc is not None and self.proc.poll() is None:
            return {self.program_label: self.proc.pid}
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
        paths = [self.srv.error_log] if self.srv is not None and self.srv.pid is not None else []
        return {path: os.path.getsize(path) if os.path.exists(path) else 0
                for path in paths + ([self.proc_log] if self.proc_log else [])}

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

    def program_output(self) -> list[str]:
        """The lines the program started here wrote (none when there is none)."""
        try:
            with open(self.proc_log, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def diagnostics(self) -> str:
        parts = []
        if self.srv is not None and self.srv.pid is not None:
            parts.append(f"error.log of {self.name} ({self.srv.error_log}):\n{self.srv.error_log_tail(40)}")
        if self.proc_log:
            head = "\n".join(self.program_output()[:12])
            parts.append(f"output of {self.name}'s program (first lines):\n{head}")
        return "\n".join(parts)

    # -- helpers
    def _apache_body(self, *lines: str, gateway: bool = False) -> str:
        level = "LogLevel warn swift_gateway:warn" if gateway else "LogLevel warn"
        return "\n".join([level, *COMMON_APACHE, *lines])

    def _start_program(self, args: list[str], user: str, ready, what: str) -> None:
        """Run the private copy of the fixture program as `user` (not via Apache) and poll
        ready() (True, or a text saying what it saw) for at most 20 s."""
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
        deadline = time.monotonic() + 20
        seen = ""
        while True:
            if self.proc.poll() is not None:
                raise self._program_failed(f"the {what} did not start")
            seen = ready()
            if seen is True:
                return
            if time.monotonic() > deadline:
                raise self._program_failed(f"not ready within 20 s ({seen})")
            time.sleep(0.1)

    def _program_failed(self, what: str) -> BenchError:
        rc = self.proc.poll() if self.proc else None
        state = f"exited with status {rc}" if rc is not None else "is running"
        lines = self.program_output()[-400:]
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
        self.srv.start(ready_path="/hello", expect_gateway=self.answers_with_pid)
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
    """The same group with 2 × 30 slots: room for every request of the 50-connection run."""
    name = "gateway-t30"
    has_download = False
    has_upload = False
    threads = 30


class GatewayHummingbirdConfig(GatewayConfig):
    """The same group serving Examples/HummingbirdSite: its `/hello` route through
    SwiftGatewayHummingbird, beside the plain API's."""
    name = "gateway-hummingbird"
    has_download = False
    has_upload = False
    answers_with_pid = False

    def _program(self) -> str:
        """$SG_HUMMINGBIRD (`make` builds it), copied into the server root."""
        source = os.environ.get("SG_HUMMINGBIRD") or os.path.join(REPO, ".build", "release", "HummingbirdSite")
        if not os.path.isfile(source):
            raise BenchError(f"{self.name}: {source} is missing (`make` builds it)")
        return self.srv.install_program(source)


class GatewayFloorConfig(GatewayConfig):
    """The module with bench/null_worker.c as the group program: two C epoll loops that answer
    every request with the hello at once."""
    name = "gateway-floor"
    has_download = False
    has_upload = False

    def _program(self) -> str:
        """bench/null_worker.c, built into the server root."""
        program = os.path.join(self.srv.bin_dir, "null_worker")
        build = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", program,
                                os.path.join(BENCH, "null_worker.c")], capture_output=True, text=True)
        if build.returncode != 0:
            raise BenchError(f"{self.name}: building bench/null_worker.c failed: {build.stderr.strip()}")
        os.chmod(program, 0o755)
        return program

    def _group_options(self) -> list[str]:
        return []   # its two processes serve as many requests at once as Apache sends


class GatewayNIOFloorConfig(GatewayFloorConfig):
    """The same with bench/Sources/NIOFloorWorker as null_worker's two workers: one SwiftNIO
    channel handler per connection that answers every request at once."""
    name = "gateway-nio-floor"

    def _group_options(self) -> list[str]:
        """$SG_NIO_FLOOR (`make nio-floor` builds it), copied into the server root."""
        source = os.environ.get("SG_NIO_FLOOR") or os.path.join(REPO, ".build-bench", "release", "NIOFloorWorker")
        if not os.path.isfile(source):
            raise BenchError(f"{self.name}: {source} is missing (`make nio-floor` builds it)")
        return [f"env=SG_NULL_WORKER_PROGRAM={self.srv.install_program(source)}"]


class ProxyFcgiConfig(Config):
    name = "proxy-fcgi"
    has_download = True
    has_upload = True
    program_label = "FastCGI server"

    def start(self) -> None:
        self.srv = H.ApacheServer(self.artifacts, name="bench-proxy-fcgi")
        pw = pwd.getpwnam(WWW_USER)
        sock_dir = os.path.join(self.srv.root, "fcgi")
        os.makedirs(sock_dir)
        os.chown(sock_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(sock_dir, 0o755)
        self.sock = os.path.join(sock_dir, "app.sock")
        self._start_program(["--fastcgi", f"unix:{self.sock}"], WWW_USER, self._socket_connects,
                            "FastCGI server")
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

    def _socket_connects(self) -> bool | str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.sock)
            return True
        except OSError as e:
            return f"{self.sock}: {e}"


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
        shutil.copy2(os.path.join(BENCH, "wsgi_hello.py"), app)
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
    program_label = "HTTP server"
    user = WWW_USER        # who runs the HTTP server (run_bench.py --standalone-user)

    def start(self) -> None:
        # An ApacheServer that is never started: a private root (0755) holding
        # the program copy; its kill_all() finds processes run from it.
        self.srv = H.ApacheServer(self.artifacts, name="bench-standalone")
        self.port = H.free_port()
        self._start_program(["--http", f"{H.HOST}:{self.port}"], self.user, self._answers, "HTTP server")

    def _answers(self) -> bool | str:
        try:
            r = requests.get(self.url(self.hello_path), timeout=2)
            return r.status_code == 200 or f"status {r.status_code} from {self.url(self.hello_path)}"
        except requests.RequestException as e:
            return repr(e)


CONFIG_CLASSES = {c.name: c for c in (StaticConfig, GatewayConfig, GatewayHummingbirdConfig, GatewayWideConfig,
                                      GatewayFloorConfig, GatewayNIOFloorConfig, ProxyFcgiConfig, WsgiConfig,
                                      StandaloneConfig)}
assert tuple(CONFIG_CLASSES) == CONFIGS


def verify(cfg: Config) -> None:
    """The configuration serves exactly what the workloads expect."""
    headers = {"Connection": "close"}
    r = requests.get(cfg.url(cfg.hello_path), headers=headers, timeout=30)
    if r.status_code != 200 or r.content != HELLO:
        raise BenchError(f"{cfg.name}: GET {cfg.hello_path} answered {r.status_code} with "
                         f"{r.content[:300]!r} (expected 200 and exactly {HELLO!r})")
    if cfg.name.startswith("gateway") and cfg.answers_with_pid and "X-Gateway-Pid" not in r.headers:
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


def read_rss(cfg: Config) -> dict[str, tuple[int, int]]:
    """label -> (pid, RSS bytes)."""
    out = {}
    for label, pid in cfg.memory_pids().items():
        rss = H.proc_rss_bytes(pid)
        if rss is not None:
            out[label] = (pid, rss)
    return out


def default_module() -> str:
    """$SG_MODULE, by default the tree's build."""
    return os.environ.get("SG_MODULE") or os.path.join(REPO, "CModule", ".libs", "mod_swift_gateway.so")


def find_artifacts() -> H.Artifacts:
    """The module and the fixture program: $SG_MODULE and $SG_FIXTURE, by default the tree's
    release builds (`make` builds them)."""
    os.environ["SG_MODULE"] = default_module()
    os.environ.setdefault("SG_FIXTURE", os.path.join(REPO, ".build", "release", "GatewayFixture"))
    try:
        return H.find_artifacts()
    except H.ArtifactsMissing as e:
        raise BenchError(f"{e}\n(`make` builds them)") from None
