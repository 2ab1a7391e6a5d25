"""Logs an admin can use (issue 21): an application's lines reach Apache's error log at the
Apache level of their swift-log level, only those the module's `LogLevel` lets through are
sent, each carries the request's id (`%L`, joinable with the access log), the group and the
worker's pid; a crash of a release build leaves a symbolicated backtrace in the error log."""

from __future__ import annotations

import os
import re

from sg_harness import proc_environ, wait_until

FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"
ACCESS_FORMAT = 'LogFormat "%L %U %>s" request_ids'

# swift-log level → (the fixture's word for it, the Apache level its line is logged at).
LEVELS = [
    ("trace", "debug"),
    ("debug", "debug"),
    ("info", "info"),
    ("notice", "notice"),
    ("warning", "warn"),
    ("error", "error"),
    ("critical", "crit"),
]
# [date] [swift_gateway:LEVEL] [pid P:tid T] [client A] SG0501: [GROUP] fixture line at L k=v…
LINE = re.compile(
    r"\[swift_gateway:(?P<apache>\w+)\] .*SG0501: \[(?P<group>[^]]+)\] fixture line at (?P<level>\w+)"
    r" group=(?P<meta_group>\S+) pid=(?P<pid>\d+) request=(?P<request>\S+)$")


def _site(s, *lines: str, options: tuple[str, ...] = ()) -> str:
    return "\n".join([
        s.daemon("site", "processes=1", "threads=10", FAULTS, *options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
        ACCESS_FORMAT,
        f"CustomLog {os.path.join(s.root, 'access.log')} request_ids",
        *lines,
    ])


def _access_log_ids(srv, path: str) -> list[str]:
    with open(os.path.join(srv.root, "access.log")) as f:
        return [fields[0] for fields in (line.split() for line in f) if len(fields) == 3 and fields[1] == path]


def _fixture_lines(srv, since: int) -> list[re.Match]:
    return [m for m in map(LINE.search, srv.error_log_text(since).splitlines()) if m]


def _log_levels_page(srv) -> tuple[list[re.Match], str, int]:
    """Requests /log-levels once; its lines in the error log, its id in the access log, the pid."""
    offset = srv.log_offset()
    r = srv.get("/log-levels")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    pid = int(r.headers["X-Gateway-Pid"])
    # The critical line is the last the page logs and passes every LogLevel tested here.
    srv.wait_for_log("fixture line at critical", since=offset)
    ids = wait_until(lambda: _access_log_ids(srv, "/log-levels"), timeout=10)
    assert len(ids) == 1, ids
    return _fixture_lines(srv, offset), ids[0], pid


def _check(lines: list[re.Match], expected: list[tuple[str, str]], request_id: str, pid: int) -> None:
    assert [(m["level"], m["apache"]) for m in lines] == expected, [m.group(0) for m in lines]
    for m in lines:
        assert m["group"] == "site" and m["meta_group"] == "site", m.group(0)
        assert int(m["pid"]) == pid, (m.group(0), pid)
        assert m["request"] == request_id, (m.group(0), request_id)


def test_loglevel_info_lets_through_info_and_above_at_their_apache_levels(apache):
    srv = apache(lambda s: _site(s, "LogLevel info swift_gateway:info"))
    (worker,) = srv.wait_workers("site", 1)
    assert proc_environ(worker).get("SWIFT_GATEWAY_LOG_LEVEL") == "info"
    lines, request_id, pid = _log_levels_page(srv)
    assert request_id != "-"
    _check(lines, [pair for pair in LEVELS if pair[1] not in ("debug",)], request_id, pid)


def test_loglevel_debug_lets_through_every_line(apache):
    # The harness's own LogLevel: info swift_gateway:debug.
    srv = apache(lambda s: _site(s))
    lines, request_id, pid = _log_levels_page(srv)
    _check(lines, LEVELS, request_id, pid)


def test_a_graceful_restart_with_another_loglevel_reaches_the_workers(apache):
    srv = apache(lambda s: _site(s, "LogLevel info swift_gateway:warn"))
    lines, request_id, pid = _log_levels_page(srv)
    _check(lines, [pair for pair in LEVELS if pair[1] in ("warn", "error", "crit")], request_id, pid)

    offset = srv.log_offset()
    srv.configure(_site(srv, "LogLevel info swift_gateway:debug"), port=srv.port)
    srv.graceful()
    # Another LogLevel is another fingerprint: the group is handed over to a new supervisor.
    srv.wait_for_log("SG0222", since=offset, timeout=30)
    srv.wait_for_log("SG0224", since=offset, timeout=60)
    (worker,) = srv.wait_workers("site", 1)
    assert proc_environ(worker).get("SWIFT_GATEWAY_LOG_LEVEL") == "debug"
    os.truncate(os.path.join(srv.root, "access.log"), 0)
    lines, request_id, pid = _log_levels_page(srv)
    assert pid == worker
    _check(lines, LEVELS, request_id, pid)


def _backtrace(srv, page: str) -> str:
    (worker,) = srv.wait_workers("site", 1)
    offset = srv.log_offset()
    r = srv.get(f"/{page}")
    assert r.status_code == 502, (r.status_code, r.text[:300])
    # The supervisor's line about the dead worker comes after the backtrace the worker wrote.
    srv.wait_for_log(re.compile(rf"SG1007: worker \d+ \(pid {worker}\)"), since=offset, timeout=60)
    text = srv.error_log_text(offset)
    print(f"/{page}:\n" + "\n".join(text.splitlines()[:40]))
    return text


def test_a_segfault_leaves_a_backtrace_naming_the_faulting_function(apache):
    srv = apache(lambda s: _site(s))
    text = _backtrace(srv, "segfault")
    assert "*** Program crashed: Bad pointer dereference" in text, text[-3000:]
    assert re.search(r"^\s*0 .*FixtureResponder\.fault\(_:request:context:\)", text, re.M), text[-3000:]


def test_a_fatal_error_leaves_a_backtrace_naming_the_crashing_function(apache):
    srv = apache(lambda s: _site(s))
    text = _backtrace(srv, "crash")
    assert "Fatal error: /crash requested" in text, text[-3000:]
    assert "*** Program crashed:" in text, text[-3000:]
    assert re.search(r"^\s*\d+ .*FixtureResponder\.fault\(_:request:context:\)", text, re.M), text[-3000:]


def test_the_workers_find_the_backtracer_unless_the_group_sets_swift_backtrace(apache):
    srv = apache(lambda s: _site(s))
    (worker,) = srv.wait_workers("site", 1)
    setting = proc_environ(worker).get("SWIFT_BACKTRACE", "")
    helper = dict(pair.split("=", 1) for pair in setting.split(",")).get("swift-backtrace")
    assert helper and os.access(helper, os.X_OK), setting
    assert "output-to=stderr" in setting and "interactive=no" in setting, setting
    srv.stop()

    srv = apache(lambda s: _site(s, options=("env=SWIFT_BACKTRACE=enable=no",)))
    (worker,) = srv.wait_workers("site", 1)
    assert proc_environ(worker).get("SWIFT_BACKTRACE") == "enable=no"
    offset = srv.log_offset()
    assert srv.get("/segfault").status_code == 502
    srv.wait_for_log(re.compile(rf"SG1007: worker \d+ \(pid {worker}\)"), since=offset, timeout=60)
    assert "Program crashed" not in srv.error_log_text(offset)
