"""Lifecycle of processes and sockets: what runs while Apache runs, nothing after `stop`."""

from __future__ import annotations

import os
import re
import stat

from sg_harness import pid_alive, proc_describe, proc_environ, wait_until

WWW_DATA = 33


def test_processes_and_sockets_while_running(apache):
    srv = apache(lambda s: s.seed_config())
    django = srv.wait_workers("django", 3)
    admin = srv.wait_workers("django-admin", 1)
    sups = srv.supervisors()
    assert set(sups) == {"django", "django-admin"}, sups
    for group, sup in sups.items():
        env = proc_environ(sup)
        assert env.get("SWIFT_GATEWAY_GROUP") == group
        assert env.get("SG_TEST_TAG") == srv.tag, "env= option not passed to the supervisor"
        assert os.stat(f"/proc/{sup}").st_uid == WWW_DATA, f"supervisor {sup} does not run as www-data"
    for w in django + admin:
        env = proc_environ(w)
        assert env.get("SWIFT_GATEWAY_ROLE") == "worker"
        assert os.stat(f"/proc/{w}").st_uid == WWW_DATA, f"worker {w} does not run as www-data"

    # <SwiftSocketPrefix>/<apache-pid>.<generation>.<group>.sock, 0600 in a 0700 dir, owned by www-data
    socks = srv.socket_files()
    names = sorted(os.path.basename(p) for p in socks)
    assert len(socks) == 2, names
    for group in ("django", "django-admin"):
        path = srv.group_socket(group)
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert st.st_uid == WWW_DATA
        assert re.fullmatch(rf"{srv.pid}\.\d+\.{re.escape(group)}\.sock", os.path.basename(path))
    dst = os.stat(os.path.dirname(srv.group_socket("django")))
    assert stat.S_IMODE(dst.st_mode) == 0o700 and dst.st_uid == WWW_DATA, (oct(dst.st_mode), dst.st_uid)


def test_stop_leaves_no_process_and_no_socket(apache):
    srv = apache(lambda s: s.seed_config())
    srv.wait_workers("django", 3)
    srv.wait_workers("django-admin", 1)
    srv.wait_distinct_pids("/", 3)
    gateway = [p for p in srv.related_processes() if "SWIFT_GATEWAY_ROLE" in proc_environ(p)]
    assert len(gateway) == 2 + 3 + 1, [proc_describe(p) for p in gateway]
    assert len(srv.socket_files()) == 2
    parent = srv.pid

    res = srv.apache2("-k", "stop")              # what `apachectl stop` does
    assert res.returncode == 0, res.stdout + res.stderr
    wait_until(lambda: not pid_alive(parent), 30, message="the Apache parent to exit")
    srv.stopped = True
    at_parent_exit = [proc_describe(p) for p in srv.related_processes()]

    # bounded grace for processes that were already exiting when the parent went away
    try:
        wait_until(lambda: not srv.related_processes(), 15, message="server processes to exit")
    except AssertionError:
        pass
    left = [proc_describe(p) for p in srv.related_processes()]
    assert not left, f"processes left after stop: {left}\n(at parent exit: {at_parent_exit})"
    assert not any(pid_alive(p) for p in gateway), [proc_describe(p) for p in gateway if pid_alive(p)]
    assert srv.socket_files() == [], f"socket files left after stop: {srv.socket_files()}"
    print(f"at the moment the parent exited: {at_parent_exit or 'nothing left'}")
