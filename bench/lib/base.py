"""What every bench script needs first: paths, sizes, the progress line, BenchError, root and
signal handling, and installing what is missing.  Imports nothing that may be missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)

MIB = 1024 * 1024
HELLO = b"Hello world!\n"
DOWNLOAD_BYTES = 1 * MIB
UPLOAD_BYTES = 10 * MIB
MOD_WSGI = "/usr/lib/apache2/modules/mod_wsgi.so"
WWW_USER = "www-data"

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """Something broke: a server did not start or answered wrongly."""


def is_root(script: str) -> bool:
    """True as root; otherwise says why the script needs it."""
    if os.geteuid() == 0:
        return True
    print(f"{script} runs Apache and the programs as {WWW_USER}: run it as root (or with sudo)",
          file=sys.stderr)
    return False


def raise_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so that `finally` stops the servers.
    SIGINT too: a shell may start us with SIGINT ignored (then Python installs no handler)."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)


def ensure_dependencies(install: bool, commands: tuple[str, ...] = ()) -> None:
    """wrk, Debian's mod_wsgi, Apache, python requests (for sg_harness), and the commands named
    (each from the Debian package of its name): apt-get what is missing, or raise BenchError."""
    packages = [c for c in ("wrk", *commands) if not shutil.which(c)]
    if not os.path.exists(MOD_WSGI):
        packages.append("libapache2-mod-wsgi-py3")
    if importlib.util.find_spec("requests") is None:
        if not sys.executable.startswith("/usr/bin/"):
            raise BenchError(f"python module 'requests' is missing for {sys.executable}: "
                             f"`{sys.executable} -m pip install requests`")
        packages.append("python3-requests")
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
