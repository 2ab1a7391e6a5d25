"""`apache2 -t` (apachectl configtest) rejects bad SwiftGateway configuration.

Each bad configuration is the valid seed configuration plus one faulty line, so
the positive control proves that the rejection comes from that line.  The
message must name the directive and the problem.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest


def test_seed_configuration_passes_configtest(new_server):
    srv = new_server()
    srv.configure(srv.seed_config())
    res = srv.configtest()
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}{res.stderr}"
    assert "Syntax OK" in res.stdout + res.stderr


@dataclass
class Case:
    id: str
    line: str            # {bin}, {root}, {u} are substituted
    directive: str
    must_name: tuple     # every string must appear in the output (after substitution)


CASES = [
    Case("unknown-option", "SwiftDaemonProcess extra-{u} frobnicate-{u}=1", "SwiftDaemonProcess",
         ("frobnicate-{u}",)),
    Case("bad-value-processes", "SwiftDaemonProcess extra-{u} processes=many", "SwiftDaemonProcess",
         ("processes",)),
    Case("bad-value-threads-zero", "SwiftDaemonProcess extra-{u} threads=0", "SwiftDaemonProcess",
         ("threads",)),
    Case("bad-value-body-read-ahead", "SwiftDaemonProcess extra-{u} body-read-ahead=lots", "SwiftDaemonProcess",
         ("body-read-ahead",)),
    Case("bad-value-socket-timeout", "SwiftDaemonProcess extra-{u} socket-timeout=soon", "SwiftDaemonProcess",
         ("socket-timeout",)),
    Case("user-root", "SwiftDaemonProcess extra-{u} user=root", "SwiftDaemonProcess",
         ("root",)),
    Case("duplicate-group", "SwiftDaemonProcess django processes=2", "SwiftDaemonProcess",
         ("django",)),
    # the variables the module sets for the supervisor (docs/architecture.md) are its own
    Case("env-reserved-token", "SwiftDaemonProcess extra-{u} env=SWIFT_GATEWAY_TOKEN=x", "SwiftDaemonProcess",
         ("SWIFT_GATEWAY_TOKEN", "reserved")),
    Case("env-reserved-queue-timeout", "SwiftDaemonProcess extra-{u} env=SWIFT_GATEWAY_QUEUE_TIMEOUT=1",
         "SwiftDaemonProcess", ("SWIFT_GATEWAY_QUEUE_TIMEOUT", "reserved")),
    Case("alias-missing-program", "SwiftScriptAlias /missing-{u} {root}/bin/NoSuchProgram-{u}",
         "SwiftScriptAlias", ("{root}/bin/NoSuchProgram-{u}",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_configtest_rejects(new_server, case):
    srv = new_server()
    u = uuid.uuid4().hex[:8]

    def sub(text: str) -> str:
        return text.replace("{bin}", srv.bin).replace("{root}", srv.root).replace("{u}", u)

    line = sub(case.line)
    srv.configure(srv.seed_config() + "\n" + line)
    if case.id == "alias-missing-program":
        assert not os.path.exists(sub("{root}/bin/NoSuchProgram-{u}"))
    res = srv.configtest()
    out = res.stdout + res.stderr
    print(f"config line: {line}\nrc={res.returncode}\n{out}")
    assert res.returncode != 0, f"configtest accepted `{line}`:\n{out}"
    assert "Syntax OK" not in out
    assert case.directive in out, f"message does not name {case.directive}:\n{out}"
    for needle in case.must_name:
        assert sub(needle) in out, f"message does not name the problem ({sub(needle)!r}):\n{out}"
    if case.id == "user-root":
        assert "user" in out.lower(), out


def test_configtest_rejects_duplicate_group_even_with_identical_options(new_server):
    srv = new_server()
    srv.configure(srv.seed_config() + "\n" + srv.daemon("django-admin", "processes=1", "threads=10"))
    res = srv.configtest()
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "SwiftDaemonProcess" in out and "django-admin" in out, out
