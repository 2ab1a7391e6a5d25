"""Error mapping: what the client sees when the gateway cannot get an answer."""

from __future__ import annotations

import os
import re
import uuid

import pytest
import requests

FAULTS = "env=SWIFT_GATEWAY_FIXTURE_FAULTS=1"
# Each mapped error has its own error-level log line naming the group
ERROR_LINE = re.compile(r":error\].*\bsite\b")


def _site(s, *options: str) -> str:
    return "\n".join([
        s.daemon("site", "processes=1", "threads=10", *options),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


@pytest.mark.parametrize("how", ["literal", "env-variable"])
def test_unknown_group_is_500_with_a_log_line_naming_it(apache, how):
    ghost = f"ghost-{uuid.uuid4().hex[:10]}"
    if how == "literal":
        extra = ["<Location /ghost>", f"    SwiftProcessGroup {ghost}", "</Location>"]
        modules = ()
    else:   # SwiftProcessGroup %{ENV:...} naming a group nobody declared
        extra = [f'SetEnvIf Request_URI "^/ghost" SG_IT_GROUP={ghost}',
                 "<Location /ghost>", "    SwiftProcessGroup %{ENV:SG_IT_GROUP}", "</Location>"]
        modules = ("setenvif",)
    srv = apache(lambda s: _site(s) + "\n" + "\n".join(extra), extra_modules=modules)
    offset = srv.log_offset()
    r = srv.get("/ghost/page")
    assert r.status_code == 500, (r.status_code, dict(r.headers), r.text[:300])
    assert "X-Gateway-Pid" not in r.headers
    line = srv.wait_for_log(ghost, since=offset)
    print(f"log line: {line}")
    # the rest of the site is unaffected
    ok = srv.get("/fine")
    assert ok.status_code == 200 and ok.headers.get("X-Gateway-Group") == "site"


def test_removed_socket_file_is_503(apache):
    srv = apache(lambda s: _site(s))
    sock = srv.group_socket("site")
    os.unlink(sock)
    offset = srv.log_offset()
    # A request with a body over 16 KiB (the module's small-body limit) always opens a new
    # connection (kept-alive ones made before the socket file went away would still work, as
    # open files do).
    for _ in range(3):
        r = requests.post(srv.url("/echo"), data=b"x" * (64 * 1024), headers={"Connection": "close"},
                          timeout=30)
        assert r.status_code == 503, (r.status_code, dict(r.headers), r.text[:300])
        assert "X-Gateway-Pid" not in r.headers
    print("log: " + srv.wait_for_log(ERROR_LINE, since=offset))


@pytest.mark.parametrize("page", ["crash", "segfault"])
def test_worker_dying_before_headers_is_502(apache, page):
    srv = apache(lambda s: _site(s, FAULTS))
    (worker,) = srv.wait_workers("site", 1)
    offset = srv.log_offset()
    r = srv.get(f"/{page}")
    assert r.status_code == 502, (r.status_code, dict(r.headers), r.text[:300])
    assert "X-Gateway-Pid" not in r.headers
    print("log: " + srv.wait_for_log(ERROR_LINE, since=offset))
    # the group recovers: a new worker answers
    r = srv.wait_ready("/")
    assert int(r.headers["X-Gateway-Pid"]) != worker


def test_fault_pages_do_not_exist_without_the_fault_switch(apache):
    """Guard for the tests above: without SWIFT_GATEWAY_FIXTURE_FAULTS the pages are 404."""
    srv = apache(lambda s: _site(s))
    (worker,) = srv.wait_workers("site", 1)
    r = srv.get("/crash")
    assert r.status_code == 404 and r.headers.get("X-Gateway-Pid") == str(worker)
    assert srv.workers("site") == [worker]


def test_worker_silent_past_socket_timeout_is_504(apache):
    srv = apache(lambda s: _site(s, FAULTS, "socket-timeout=2"))
    offset = srv.log_offset()
    r = srv.get("/hang", timeout=90)
    assert r.status_code == 504, (r.status_code, dict(r.headers), r.text[:300])
    assert "X-Gateway-Pid" not in r.headers
    print("log: " + srv.wait_for_log(ERROR_LINE, since=offset))
    # other requests are still served (the hung request holds one slot of ten)
    ok = srv.get("/")
    assert ok.status_code == 200


# The header blocks are fake_fastcgi_program.HEADER_CASES; each is also sent one byte per
# STDOUT record (the module checks the block as it arrives, so its state must carry over)
# and in records of 7 bytes.
HEADER_CHUNKS = ["", "&chunk=1", "&chunk=7"]
HOSTILE_HEADERS = {
    "bare-cr": "a bare CR in the header block",
    "bare-cr-line-start": "a bare CR in the header block",
    "nul": "a NUL byte in the header block",
    "control": "a control character in the header block",
    "delete": "a control character in the header block",
    "no-colon": "a header line without ':'",
    "empty-name": "a header with an empty name",
    "bad-name": "an invalid character in a header name",
    "line-too-long": "a header line longer than httpd's CGI header parser takes",  # a line over its 8 KiB
    "too-big": "the header block exceeds header-buffer-size=32768 bytes",
}


def _header_cases_site(apache):
    return apache(lambda s: s.fake_program_config("headers"), ready_path="/fake/ready?case=lf-only",
                  expect_gateway=False)


def test_response_headers_reach_the_client_whole_however_the_worker_splits_them(apache):
    srv = _header_cases_site(apache)
    for chunk in HEADER_CHUNKS:
        r = srv.get(f"/fake/x?case=good{chunk}")
        assert (r.status_code, r.text) == (201, "ok\n"), (chunk, r.status_code, r.text[:200])
        assert r.headers["X-Tab"] == "a\tb" and r.headers["X-Token-Chars"] == "!#$%&'*+-.^_`|~", chunk
        r = srv.get(f"/fake/x?case=lf-only{chunk}")
        assert (r.status_code, r.headers.get("X-Lf"), r.text) == (200, "yes", "ok\n"), chunk
        r = srv.get(f"/fake/x?case=long{chunk}")  # 24 KiB of headers: within header-buffer-size
        assert r.status_code == 200, (chunk, r.status_code)
        assert [r.headers[f"X-Long-{i}"] for i in range(6)] == ["v" * 4000] * 6, chunk


def test_hostile_response_headers_are_502_with_the_reason_in_the_log(apache):
    srv = _header_cases_site(apache)
    for case, reason in HOSTILE_HEADERS.items():
        for chunk in HEADER_CHUNKS:
            offset = srv.log_offset()
            r = srv.get(f"/fake/x?case={case}{chunk}")
            assert r.status_code == 502, (case, chunk, r.status_code, dict(r.headers))
            assert "X-Injected" not in r.headers and "X-A" not in r.headers, (case, chunk)
            srv.wait_for_log(f"SG0504: group fake: bad response headers from the worker: {reason}",
                             since=offset)


# fake_fastcgi_program.RECORD_CASES: what Apache must make of each answer.
RECORD_OUTCOMES = {
    "version-2": (502, "SG0511: group fake: the worker does not speak FastCGI as expected: "
                       "FastCGI version 2 (expected 1)"),
    "other-request-id": (502, "SG0511: group fake: the worker does not speak FastCGI as expected: "
                              "FastCGI request id 7 (expected 1)"),
    "unknown-and-management-records": (200, None),
    "stderr-line": (200, "SG0501: [fake] a line from the worker"),
    "end-without-headers": (502, "SG0505: group fake: the worker ended the request without complete "
                                 "response headers"),
    "overloaded": (503, "SG0506: group fake: the worker refused the request as overloaded"),
    "cut-in-a-record": (502, "SG0502: group fake: the worker closed the connection before sending "
                             "response headers"),
    "cut-in-a-header": (502, "SG0502: group fake: the worker closed the connection before sending "
                             "response headers"),
}


def test_malformed_fastcgi_from_the_worker_is_a_clear_error_and_a_log_line(apache):
    srv = apache(lambda s: s.fake_program_config("records"),
                 ready_path="/fake/ready?case=unknown-and-management-records", expect_gateway=False)
    for case, (status, line) in RECORD_OUTCOMES.items():
        offset = srv.log_offset()
        r = srv.get(f"/fake/x?case={case}")
        assert r.status_code == status, (case, r.status_code, r.text[:200])
        if status == 200:
            assert r.text == "ok\n", (case, r.text[:200])
        if line:
            srv.wait_for_log(line, since=offset)
    # Apache and the group are unharmed
    assert srv.get("/fake/x?case=stderr-line").status_code == 200
