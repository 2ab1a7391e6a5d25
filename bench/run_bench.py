#!/usr/bin/env python3
"""`make bench`: SwiftGateway against Apache's static files, mod_proxy_fcgi,
mod_wsgi daemon mode and the worker program serving HTTP itself.

Every configuration runs as its own private server on 127.0.0.1; all are started first and
measured round-robin in one run (lib/session.py).  Progress goes to stderr; the tables go to
stdout and to bench/results/latest.md.  Exit status: 0 when every configuration started,
answered correctly and every load run was free of errors (targets are only reported); 1 when
something broke; 2 on bad usage; 130 when interrupted.  bench/README.md says what each
configuration is and how to read the tables.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.base import BENCH, WWW_USER, BenchError, ensure_dependencies, is_root, raise_on_signals  # noqa: E402
from lib.workloads import CONFIGS, WORKLOADS  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds over all runs (default 3)")
    p.add_argument("--duration", type=float, default=5, help="seconds per load run (default 5)")
    p.add_argument("--only", default=",".join(CONFIGS),
                   help=f"comma-separated configurations (default all: {','.join(CONFIGS)})")
    keys = [w.key for w in WORKLOADS]
    p.add_argument("--workloads", default="",
                   help=f"comma-separated workload keys to run (default all: {','.join(keys)})")
    p.add_argument("--memory-requests", type=int, default=100_000,
                   help="requests of the memory run per configuration (default 100000)")
    p.add_argument("--memory-max-seconds", type=float, default=90,
                   help="bound of the memory run per configuration (default 90)")
    p.add_argument("--no-install", action="store_true", help="do not apt-get wrk / mod_wsgi")
    p.add_argument("--standalone-user", default=WWW_USER,
                   help="account that runs the `standalone` HTTP server (default www-data)")
    p.add_argument("--output", default=os.path.join(BENCH, "results", "latest.md"),
                   help="where the tables are written too (default bench/results/latest.md)")
    args = p.parse_args()
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()] or keys
    bad = [c for c in args.only if c not in CONFIGS] + [w for w in args.workloads if w not in keys]
    if bad or args.rounds < 1 or args.duration < 1:
        p.error(f"unknown configuration(s)/workload(s) {bad}" if bad else "rounds and duration must be >= 1")
    return args


def main() -> int:
    args = parse_args()
    raise_on_signals()
    if not is_root("make bench"):
        return 1
    try:
        ensure_dependencies(not args.no_install)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    from lib import session   # only now: it needs requests, which may just have been installed
    return session.run(args)


if __name__ == "__main__":
    sys.exit(main())
