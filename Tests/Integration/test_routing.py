"""Routing: the django and django-admin groups of one program and SCRIPT_NAME / PATH_INFO of a mount."""

from __future__ import annotations

import os
import subprocess

import requests

from sg_harness import parallel_get, parse_text_page


def _ok_answers(results, what: str) -> list[requests.Response]:
    errors = [r for r in results if not isinstance(r, requests.Response)]
    bad = [f"{r.status_code} {r.headers.get('X-Gateway-Group')} {r.text[:200]!r}"
           for r in results if isinstance(r, requests.Response) and r.status_code != 200]
    assert not errors and not bad, f"{what}: {len(errors)} exceptions {errors[:3]}, non-200: {bad[:5]}"
    return results


def test_seed_config_three_django_workers_one_admin_worker_disjoint(apache):
    srv = apache(lambda s: s.seed_config())
    django_workers = srv.wait_workers("django", 3)
    admin_workers = srv.wait_workers("django-admin", 1)
    # all three workers accepting (readiness, bounded) before counting
    srv.wait_distinct_pids("/", 3)

    # 300 requests to "/", each with a body over the module's 16 KiB small-body limit: each
    # then opens its own connection, which the kernel hands to any accepting worker (over
    # kept connections, two of three workers can serve a quick series alone)
    answers = _ok_answers(parallel_get(srv.url("/"), 300, concurrency=30, data=b"x" * (32 * 1024)),
                          "POST /")
    django_pids = set()
    for r in answers:
        assert r.headers.get("X-Gateway-Group") == "django", r.headers
        pid = int(r.headers["X-Gateway-Pid"])
        page = parse_text_page(r.text)
        assert page["group"] == "django"
        assert int(page["pid"]) == pid
        django_pids.add(pid)
    assert len(django_pids) == 3, f"300 requests to / answered by pids {sorted(django_pids)}"
    assert django_pids == set(srv.workers("django")), \
        f"answering pids {sorted(django_pids)} are not the django workers {srv.workers('django')}"
    assert set(django_workers) == django_pids, "django workers were replaced during the test"

    # everything under /admin goes to the single django-admin worker
    admin_paths = ["/admin", "/admin/", "/admin/users", "/admin/users/42/edit", "/admin/env",
                   "/admin/x/y/z?q=1"]
    admin_pids = set()
    for path in admin_paths:
        results = _ok_answers(parallel_get(srv.url(path), 20, concurrency=10), f"GET {path}")
        for r in results:
            assert r.headers.get("X-Gateway-Group") == "django-admin", (path, dict(r.headers))
            admin_pids.add(int(r.headers["X-Gateway-Pid"]))
    assert len(admin_pids) == 1, f"/admin answered by pids {sorted(admin_pids)}"
    assert admin_pids == set(admin_workers), (admin_pids, admin_workers)
    assert not admin_pids & django_pids, "a worker served both groups"

    # the two groups have different supervisors and disjoint worker sets (from /proc)
    sups = srv.supervisors()
    assert set(sups) == {"django", "django-admin"}, sups
    assert not set(srv.workers("django")) & set(srv.workers("django-admin"))


def _env(srv, path: str) -> dict:
    r = srv.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    doc = r.json()
    assert int(doc["pid"]) == int(r.headers["X-Gateway-Pid"])
    return doc["environment"]


def _text(srv, path: str) -> dict:
    r = srv.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert "X-Gateway-Pid" in r.headers, f"{path} not served by the gateway: {dict(r.headers)}"
    return parse_text_page(r.text)


def test_script_name_and_path_info_for_mount_at_root(apache):
    srv = apache(lambda s: s.seed_config())
    # CGI/WSGI convention for a root mount: SCRIPT_NAME empty, PATH_INFO the whole path
    for path, path_info in [("/", "/"), ("/x/y", "/x/y"), ("/x/y/", "/x/y/"), ("/admin/", "/admin/"),
                            ("/a/b?c=d", "/a/b")]:
        page = _text(srv, path)
        assert page["script_name"] == "", (path, page)
        assert page["path_info"] == path_info, (path, page)

    env = _env(srv, "/some/where/env?a=1&b=two")
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/some/where/env"
    assert env["QUERY_STRING"] == "a=1&b=two"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["REMOTE_ADDR"] == "127.0.0.1"

    env = _env(srv, "/admin/env")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/admin/env")


def _mounted_at_app(s) -> str:
    return "\n".join([
        s.daemon("app", "processes=1", "threads=10"),
        "SwiftProcessGroup app",
        f"SwiftScriptAlias /app {s.bin}",
    ])


def test_script_name_and_path_info_for_mount_at_app(apache):
    srv = apache(_mounted_at_app, ready_path="/app/")
    for path, path_info in [("/app", ""), ("/app/", "/"), ("/app/x/y", "/x/y"), ("/app/x/y/", "/x/y/"),
                            ("/app/a?b=c", "/a")]:
        page = _text(srv, path)
        assert page["script_name"] == "/app", (path, page)
        assert page["path_info"] == path_info, (path, page)
        assert page["group"] == "app"

    env = _env(srv, "/app/deep/er/env?k=v")
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/deep/er/env"
    assert env["QUERY_STRING"] == "k=v"
    env = _env(srv, "/app/env")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/env")

    # outside the mount: not the application (Apache's static 404 from the empty docroot)
    r = srv.get("/elsewhere")
    assert r.status_code == 404 and "X-Gateway-Pid" not in r.headers, (r.status_code, dict(r.headers))


def test_mount_at_app_matches_whole_path_segments_only(apache):
    """/application is not under the /app mount (as with Alias)."""
    srv = apache(_mounted_at_app, ready_path="/app/")
    r = srv.get("/application/env")
    assert "X-Gateway-Pid" not in r.headers, (
        f"/application/env was routed to the /app mount: {r.status_code} {r.text[:300]!r}")
    assert r.status_code == 404


def test_variables_spread_over_several_params_records_all_arrive(apache):
    """About 35 KiB of CGI variables need three PARAMS records (16 KiB each at most)."""
    srv = apache(_mounted_at_app, ready_path="/app/")
    headers = {f"X-Big-{i}": chr(ord("a") + i) * 7000 for i in range(5)}
    r = srv.get("/app/env", headers=headers)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    env = r.json()["environment"]
    for i in range(5):
        assert env.get(f"HTTP_X_BIG_{i}") == chr(ord("a") + i) * 7000, f"HTTP_X_BIG_{i} lost or cut"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/env")


def test_variables_a_client_or_a_setenv_could_spoof_do_not_reach_the_application(apache):
    """httpoxy, REMOTE_USER without authentication, Authorization without
    SwiftPassAuthorization, headers with '_', and the SWIFT_GATEWAY_* control variables
    (which a SetEnv must not override: a wrong token would even be refused)."""
    spoofed = ["SetEnv SWIFT_GATEWAY_GROUP evil", "SetEnv SWIFT_GATEWAY_REQUEST_ID evil",
               "SetEnv SWIFT_GATEWAY_TOKEN evil", "SetEnv swift_gateway_request_start 1",
               "SetEnv REMOTE_USER evil"]
    srv = apache(lambda s: _mounted_at_app(s) + "\n" + "\n".join(spoofed), ready_path="/app/",
                 extra_modules=("env",))
    headers = {"Proxy": "http://127.0.0.1:9/", "Authorization": "Basic ZXZpbDpldmls",
               "X_Evil": "1", "Remote-User": "evil"}
    r = srv.get("/app/env", headers=headers)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    env = r.json()["environment"]
    for name in ("HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_X_EVIL", "REMOTE_USER", "AUTH_TYPE",
                 "SWIFT_GATEWAY_TOKEN", "swift_gateway_request_start"):
        assert name not in env, (name, env.get(name))
    assert env["HTTP_REMOTE_USER"] == "evil"     # a header is only ever a header
    assert env["SWIFT_GATEWAY_GROUP"] == "app"
    assert env["SWIFT_GATEWAY_REQUEST_ID"] not in ("", "evil")
    assert int(env["SWIFT_GATEWAY_REQUEST_START"]) > 0


def test_remote_user_and_auth_type_come_from_apaches_authentication(apache):
    def site(s) -> str:
        users = os.path.join(s.root, "users")
        subprocess.run(["htpasswd", "-b", "-c", "-B", users, "alice", "secret"], check=True,
                       capture_output=True)
        os.chmod(users, 0o644)
        return "\n".join([
            _mounted_at_app(s), "<Location /app/private>", "    AuthType Basic",
            '    AuthName "test"', f"    AuthUserFile {users}", "    Require valid-user", "</Location>",
            "SetEnv REMOTE_USER evil",
        ])

    srv = apache(site, ready_path="/app/", extra_modules=("env", "auth_basic", "authn_file", "authn_core",
                                                            "authz_user"))
    assert srv.get("/app/private/env").status_code == 401
    r = srv.get("/app/private/env", auth=("alice", "secret"))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    env = r.json()["environment"]
    assert (env.get("REMOTE_USER"), env.get("AUTH_TYPE")) == ("alice", "Basic"), env
    assert "HTTP_AUTHORIZATION" not in env      # the password stays with Apache
    public = srv.get("/app/env", auth=("alice", "secret")).json()["environment"]
    assert "REMOTE_USER" not in public and "AUTH_TYPE" not in public
