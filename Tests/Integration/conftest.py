"""Fixtures for the SwiftGateway integration tests (see README.md).

The ApacheServer helper class lives in sg_harness.py (importable by the test
modules); this file wires it into pytest:

* ``artifacts``: SG_MODULE / SG_FIXTURE, or a clear *failure* (never a skip).
* ``example``: SG_EXAMPLE, the example site's program, likewise.
* ``apache``: a factory ``apache(body, ready_path="/", ...) -> ApacheServer`` that
  writes the config, starts the server and waits until it is ready.  Every
  server it made is stopped at teardown (SIGTERM by pid, bounded wait, SIGKILL
  of the whole tree as fallback) even when the test failed; on failure the
  error-log tail is printed into the report.
* ``new_server``: the same without starting (for configtest and for tests that
  need the server object before writing the config).
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import sg_harness  # noqa: E402
from sg_harness import ApacheServer, ArtifactsMissing  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _failed(request) -> bool:
    node = request.node
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


def _found(find):
    try:
        return find()
    except ArtifactsMissing as e:
        message = str(e)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def artifacts() -> sg_harness.Artifacts:
    return _found(sg_harness.find_artifacts)


@pytest.fixture(scope="session")
def example() -> str:
    """The built example site (Examples/ExampleSite)."""
    return _found(sg_harness.find_example)


class _Servers:
    def __init__(self, artifacts, request):
        self.artifacts = artifacts
        self.request = request
        self.servers: list[ApacheServer] = []

    def new(self, name: str = "sg", with_module: bool = True) -> ApacheServer:
        srv = ApacheServer(self.artifacts if with_module else None, name=name)
        self.servers.append(srv)
        return srv

    def teardown(self) -> None:
        failed = _failed(self.request)
        errors = []
        for srv in self.servers:
            errors += srv.stop_everything()
            if failed:
                print(f"\n===== error.log of {srv.root} (port {srv.port}, tag {srv.tag}) =====")
                print(srv.error_log_tail(120))
            srv.cleanup()
        if errors:
            print("teardown: " + "; ".join(errors))
        reports = sg_harness.new_sanitizer_reports()
        if reports:
            pytest.fail("sanitizer reports (make test-asan):\n" + "\n".join(reports), pytrace=False)


def _test_name(request) -> str:
    return request.node.name.split("[")[0].removeprefix("test_")[:24]


@pytest.fixture
def new_server(artifacts, request):
    """Factory for unstarted servers (with the module and the fixture program copied in)."""
    servers = _Servers(artifacts, request)
    yield lambda with_module=True: servers.new(_test_name(request), with_module)
    servers.teardown()


@pytest.fixture
def apache(artifacts, request):
    """Factory: apache(body | callable(srv)->body, ready_path="/", extra_modules=()) -> started server."""
    servers = _Servers(artifacts, request)

    def make(body, ready_path: str | None = "/", extra_modules=(), expect_gateway: bool = True):
        srv = servers.new(_test_name(request))
        text = body(srv) if callable(body) else body
        srv.configure(text, extra_modules=extra_modules)
        return srv.start(ready_path=ready_path, expect_gateway=expect_gateway)

    yield make
    servers.teardown()


@pytest.fixture
def static_apache(request):
    """Factory for a server WITHOUT the module (harness self-test; needs no artifacts)."""
    servers = _Servers(None, request)

    def make(body: str = "", ready_path: str | None = "/index.html"):
        srv = servers.new(_test_name(request), with_module=False)
        srv.configure(body, with_module=False)
        return srv.start(ready_path=ready_path, expect_gateway=False)

    yield make
    servers.teardown()


def pytest_terminal_summary(terminalreporter):
    if sg_harness.NOTES:
        terminalreporter.section("SwiftGateway measurements (informational, not asserted)")
        for line in sg_harness.NOTES:
            terminalreporter.write_line(line)
