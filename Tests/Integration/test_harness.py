"""Self-test of the harness with a real Apache but WITHOUT the module (static file).

Needs neither SG_MODULE nor SG_FIXTURE: it proves that start, readiness, process
discovery, stop by pid and the teardown work, so a failure elsewhere points at the
product, not at the harness.
"""

import os
import signal

from sg_harness import pid_alive, proc_children, wait_until


def test_static_server_starts_answers_and_stops_by_pid(static_apache):
    srv = static_apache()
    r = srv.get("/index.html")
    assert r.status_code == 200
    assert r.text == f"harness {srv.tag}\n"
    children = srv.apache_children()
    assert children, "Apache parent has no children"
    assert all(os.stat(f"/proc/{c}").st_uid == 33 for c in children), "children not www-data"
    assert set(srv.related_processes()) >= {srv.pid, *children}
    assert srv.supervisors() == {}

    pid = srv.pid
    srv.stop()
    assert not pid_alive(pid)
    assert srv.related_processes() == []


def test_kill_all_reaches_orphans_after_parent_death(static_apache):
    """kill_all() reaches the whole tree even when the parent is already gone."""
    srv = static_apache()
    children = srv.apache_children()
    os.kill(srv.pid, signal.SIGKILL)          # parent gone, children orphaned
    wait_until(lambda: not pid_alive(srv.pid), 10, message="parent death")
    # orphans are still found through their command line
    assert set(children) <= set(srv.related_processes()) or not any(map(pid_alive, children))
    srv.kill_all()
    assert srv.related_processes() == []
    assert not any(pid_alive(c) for c in children)
    assert proc_children(srv.pid) == []
