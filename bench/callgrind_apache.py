#!/usr/bin/env python3
"""`make callgrind`: instructions per request in Apache, counted by valgrind's callgrind.

`static` and `gateway` of make bench in turn, each served again by `apache2 -X` under
callgrind (bench/README.md, "make callgrind"): instructions per hello request, all of Apache's,
and the functions a gateway request spends them in. Exit status 0, or 1 when a step failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.base import WWW_USER, BenchError, ensure_dependencies, log  # noqa: E402
from lib.configurations import CONFIG_CLASSES, find_artifacts  # noqa: E402
from lib.load import run_wrk  # noqa: E402
import sg_harness as H  # noqa: E402 (lib puts it on the path)

WARM_UP_SECONDS = 2
CONNECTIONS = 4
START_TIMEOUT = 180      # Apache and the group start slowly under valgrind
CONTROL_TIMEOUT = 60

# (label, the functions whose inclusive counts add up to it)
PARTS = [
    ("reading the request (ap_read_request)", ["ap_read_request"]),
    ("the module's handler, all of it (sg_handler)", ["sg_handler"]),
    ("in the handler: CGI variables (ap_add_common_vars, ap_add_cgi_vars)", ["ap_add_common_vars", "ap_add_cgi_vars"]),
    ("in the handler: FastCGI encoding (ap_fcgi_encode_env, ap_fcgi_encoded_env_len)",
     ["ap_fcgi_encode_env", "ap_fcgi_encoded_env_len"]),
    ("in the handler: the exchange with the worker (sg_exchange_run)", ["sg_exchange_run"]),
    ("in the exchange: httpd's CGI header parser (ap_scan_script_header_err_core_ex)",
     ["ap_scan_script_header_err_core_ex"]),
]


class Failure(Exception):
    pass


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        raise Failure(f"{' '.join(cmd)} failed (rc={proc.returncode}):\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return proc


def wrk(url: str, seconds: int) -> int:
    """Requests wrk completed; fails on any error response or socket error."""
    summary = run_wrk(url, CONNECTIONS, seconds, "report.lua")
    if any(summary["errors"].values()) or not summary["requests"]:
        raise Failure(f"wrk against {url} went wrong: {summary}")
    return summary["requests"]


def as_apache_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", WWW_USER, "--", *cmd]


def wait_for_hello(url: str, valgrind: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if valgrind.poll() is not None:
            raise Failure(f"apache2 -X under valgrind exited (rc={valgrind.returncode})")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise Failure(f"no 200 from {url} within {START_TIMEOUT} s under valgrind")


def valgrind_pid(launcher: subprocess.Popen) -> int:
    """runuser forks: the process callgrind runs in is its child."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = H.proc_children(launcher.pid)
        if children:
            return children[0]
        time.sleep(0.1)
    raise Failure("runuser started no valgrind")


def inclusive_counts(dump: str) -> dict[str, int]:
    """Inclusive instructions per function name, from callgrind_annotate."""
    out = run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump], timeout=300).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*?:(\w+) \[", line)
        if match:
            counts.setdefault(match.group(2), int(match.group(1).replace(",", "")))
    return counts


def total_instructions(dump: str) -> int:
    with open(dump) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise Failure(f"no totals in {dump}")


def measure(name: str, artifacts, seconds: int, keep: str | None) -> tuple[int, int, dict[str, int]]:
    """(requests, instructions, inclusive counts) for one configuration under callgrind."""
    cfg = CONFIG_CLASSES[name](artifacts)
    launcher = None
    valgrind_log = None
    try:
        log(f"{name}: starting as make bench does, then again as apache2 -X under callgrind")
        cfg.start()
        cfg.srv.stop()
        root = cfg.srv.root
        run(["chown", "-R", f"{WWW_USER}:{WWW_USER}", root], timeout=60)
        for stale in [cfg.srv.pid_file, *cfg.srv.socket_files()]:
            if os.path.exists(stale):
                os.unlink(stale)
        valgrind_log = open(os.path.join(root, "valgrind.log"), "w")
        launcher = subprocess.Popen(
            as_apache_user("valgrind", "--tool=callgrind", f"--callgrind-out-file={root}/callgrind.%p.out",
                           H.APACHE_BIN, "-X", "-d", root, "-f", cfg.srv.conf_path),
            env=cfg.srv.apache_env(), stdout=valgrind_log, stderr=subprocess.STDOUT)
        pid = valgrind_pid(launcher)
        url = cfg.url(cfg.hello_path)
        wait_for_hello(url, launcher)
        wrk(url, WARM_UP_SECONDS)
        run(as_apache_user("callgrind_control", "-z", str(pid)), timeout=CONTROL_TIMEOUT)
        count = wrk(url, seconds)
        run(as_apache_user("callgrind_control", "-d", str(pid)), timeout=CONTROL_TIMEOUT)
        dump = f"{root}/callgrind.{pid}.out.1"
        log(f"{name}: {count:,} requests counted, reading {dump}")
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(dump, os.path.join(keep, f"callgrind.{name}.out"))
        return count, total_instructions(dump), inclusive_counts(dump)
    finally:
        if launcher is not None:
            for child in H.proc_children(launcher.pid):
                try:
                    os.kill(child, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                launcher.kill()
        if valgrind_log is not None:
            valgrind_log.close()
        cfg.shut_down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of the counted wrk run")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get valgrind, wrk, mod_wsgi")
    parser.add_argument("--keep", metavar="DIR", help="copy the dumps there (for callgrind_annotate)")
    args = parser.parse_args()
    results = {}
    try:
        ensure_dependencies(install=not args.no_install, commands=("valgrind",))
        artifacts = find_artifacts()
        for name in ("static", "gateway"):
            results[name] = measure(name, artifacts, args.seconds, args.keep)
    except (Failure, BenchError, H.ServerStartError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"## Instructions per hello request in Apache (callgrind, apache2 -X, wrk -c{CONNECTIONS})\n")
    print("| configuration | requests counted | instructions per request |")
    print("|---|---|---|")
    for name, (count, total, _) in results.items():
        print(f"| {name} | {count:,} | {total / count:,.0f} |")
    count, _, counts = results["gateway"]
    print("\n### Where a gateway request spends them\n")
    print("| part | instructions per request |")
    print("|---|---|")
    for label, functions in PARTS:
        print(f"| {label} | {sum(counts.get(f, 0) for f in functions) / count:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
