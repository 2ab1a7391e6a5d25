"""What make bench measures: the names of the configurations (lib/configurations.py) and the
workloads run against them (README.md, "The workloads").  Imports nothing that may be missing."""

from __future__ import annotations

from dataclasses import dataclass

from lib.base import UPLOAD_BYTES

CONFIGS = ("static", "gateway", "gateway-hummingbird", "gateway-t30", "gateway-floor", "gateway-nio-floor",
           "proxy-fcgi", "wsgi-daemon", "standalone")
GATEWAY_LIKE = ("gateway", "proxy-fcgi", "wsgi-daemon")


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: str            # hello | download | upload
    connections: int
    configs: tuple[str, ...]
    body_bytes: int = UPLOAD_BYTES   # of each request, for uploads


WORKLOADS = (
    Workload("hello-50", "hello, 50 connections", "hello", 50, CONFIGS),
    Workload("hello-10", "hello, 10 connections", "hello", 10, CONFIGS),
    Workload("hello-200", "hello, 200 connections", "hello", 200, CONFIGS),
    Workload("download", "1 MiB download, 10 connections", "download", 10, ("static", *GATEWAY_LIKE)),
    Workload("upload", "10 MiB upload, 10 connections", "upload", 10, GATEWAY_LIKE),
    Workload("post-1k", "1 KiB POST, 10 connections", "upload", 10, GATEWAY_LIKE, body_bytes=1024),
)
WORKLOAD = {w.key: w for w in WORKLOADS}
