"""The program file behind a SwiftScriptAlias is never served as a file.

SwiftScriptAlias sets the request's file name to the program (so that <Directory> sections
of the program apply).  When another handler took such a request (a SetHandler in a
section: default-handler, a handler no module provides), httpd's default handler sent the
program's bytes for the mount's own URL (without PATH_INFO; below it, a 404).  Now the
gateway answers such a request itself or refuses it with 403 and an error-level log line
naming the handler that tried (SG0407); only handlers known never to read the request's
file (mod_status's server-status, ...) still serve their own page under a mount.
"""

from __future__ import annotations

import re

import pytest

ELF_MAGIC = b"\x7fELF"

# a mount of its own taken whole by another handler -> SetHandler value, which is the handler
# the log line names
OTHER_HANDLERS = {
    "/default": "default-handler",
    "/asis": "send-as-is",      # mod_asis: sends the request's file with its own headers
    "/typo": "swift-gatewya",   # no module provides it
}


def _mounts_with_other_handlers(s) -> str:
    lines = [
        s.daemon("app", "processes=1", "threads=10"),
        "SwiftProcessGroup app",
        f"SwiftScriptAlias /app {s.bin}",
    ]
    for path, value in OTHER_HANDLERS.items():
        lines += [f"SwiftScriptAlias {path} {s.bin}",
                  f"<Location {path}>", f"    SetHandler {value}", "</Location>"]
    # SetHandler None takes back an override: the mount's handler stays the gateway's
    lines += [f"SwiftScriptAlias /none {s.bin}", "<Location /none>", "    SetHandler None",
              "</Location>"]
    # another handler for a part of a mount only
    lines += ["<Location /app/default>", "    SetHandler default-handler", "</Location>"]
    # a handler that never reads the request's file keeps its page under a mount
    lines += ["<Location /app/server-status>", "    SetHandler server-status", "</Location>"]
    lines += [f"SwiftScriptAlias /status {s.bin}",
              "<Location /status>", "    SetHandler swift-gateway-status", "</Location>"]
    return "\n".join(lines)


@pytest.fixture
def server(apache):
    srv = apache(_mounts_with_other_handlers, ready_path="/app/", extra_modules=("asis", "status"))
    with open(srv.bin, "rb") as f:
        assert f.read(4) == ELF_MAGIC, "the example program is expected to be an ELF file"
    return srv


def _assert_refused(srv, path: str, handler: str) -> None:
    since = srv.log_offset()
    r = srv.get(path)
    assert ELF_MAGIC not in r.content, (
        f"GET {path} sent the program file: {r.status_code}, {len(r.content)} bytes")
    assert r.status_code == 403, (path, r.status_code, dict(r.headers), r.content[:200])
    assert "X-Gateway-Pid" not in r.headers, (path, dict(r.headers))
    uri = path.split("?")[0]
    line = srv.wait_for_log(re.compile(r"SG0407: .*" + re.escape(uri)), since=since)
    assert ":error]" in line, line
    assert f"handler {handler} " in line, line
    assert srv.bin in line, f"the log line does not name the program: {line}"


@pytest.mark.parametrize("path", sorted(OTHER_HANDLERS))
def test_another_handler_on_an_alias_mount_gets_403_not_the_program(server, path):
    """The mount itself (no PATH_INFO) is where httpd's default handler sent the file."""
    handler = OTHER_HANDLERS[path]
    _assert_refused(server, path, handler)
    _assert_refused(server, path + "/", handler)
    _assert_refused(server, path + "/deeper?x=1", handler)


def test_another_handler_for_a_part_of_a_mount_gets_403(server):
    _assert_refused(server, "/app/default", "default-handler")
    _assert_refused(server, "/app/default/x", "default-handler")


def _assert_from_a_worker(srv, path: str) -> None:
    r = srv.get(path)
    assert ELF_MAGIC not in r.content, (
        f"GET {path} sent the program file: {r.status_code}, {len(r.content)} bytes")
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert "X-Gateway-Pid" in r.headers, (path, dict(r.headers))


def test_sethandler_none_on_an_alias_mount_leaves_it_to_the_gateway(server):
    for path in ("/none", "/none/", "/none/x"):
        _assert_from_a_worker(server, path)


def test_server_status_under_a_mount_is_mod_status_page(server):
    since = server.log_offset()
    r = server.get("/app/server-status?auto")
    assert ELF_MAGIC not in r.content, f"sent the program file: {r.status_code}, {len(r.content)} bytes"
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert "ServerUptimeSeconds" in r.text, r.text[:300]
    assert "X-Gateway-Pid" not in r.headers, dict(r.headers)
    assert "SG0407" not in server.error_log_text(since)


def test_the_gateway_status_page_under_a_mount_is_its_own_page(server):
    since = server.log_offset()
    r = server.get("/status?json")
    assert ELF_MAGIC not in r.content, f"sent the program file: {r.status_code}, {len(r.content)} bytes"
    assert r.status_code == 200 and r.json()["groups"], (r.status_code, r.text[:300])
    assert "SG0407" not in server.error_log_text(since)


def test_the_gateway_still_answers_beside_the_refused_locations(server):
    for path in ("/app", "/app/hello", "/app/other/env"):
        _assert_from_a_worker(server, path)
