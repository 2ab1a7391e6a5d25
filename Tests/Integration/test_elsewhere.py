"""The same programs without mod_swift_gateway: started by hand with `--fastcgi unix:PATH`
behind a real nginx (`fastcgi_pass`) and behind Apache's mod_proxy_fcgi, and with
`--http 127.0.0.1:PORT` by themselves.

Each front serves two programs, each one process started by the test as www-data (nginx's
workers and Apache's children, www-data too, connect to their sockets): the example site
(Examples/ExampleSite) at `/`, whose pages must all answer, and the test fixture
(Tests/Fixtures/GatewayFixture) at `/fixture/`, for what the example has no page for: a 50 MiB
upload and a 50 MiB download, byte-exact. Standalone, each program has a port of its own.
Then a short load of the example's /hello (8 connections, a few seconds): 0 failed requests.

nginx is half-duplex: it stops sending a request body once the response headers went out, so
behind it the upload goes to the fixture's /upload (it reads the whole body, then answers with
its length) rather than /echo, and a test shows the 50 MiB /echo stalling.

The configurations are README.md's ("The program by itself")."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests
from sg_harness import (HOST, MIB, PROGRAM_USER, ApacheServer, NginxServer, RandomUpload,
                        StandaloneProgram, duplex_request, expected_pattern_digest,
                        free_port, note, run_load, user_ids, wait_until)

TRANSFER = 50 * MIB

# nginx: the CGI variables a SwiftGateway program reads (no `include fastcgi_params`, whose
# SCRIPT_NAME would be sent a second time), PATH_INFO from fastcgi_split_path_info, and both
# directions streamed (no request buffering to a temporary file, no response buffering).
NGINX_PARAMS = """\
fastcgi_param REQUEST_METHOD    $request_method;
fastcgi_param REQUEST_URI       $request_uri;
fastcgi_param QUERY_STRING      $query_string;
fastcgi_param CONTENT_TYPE      $content_type;
fastcgi_param CONTENT_LENGTH    $content_length;
fastcgi_param SCRIPT_NAME       $fastcgi_script_name;
fastcgi_param PATH_INFO         $fastcgi_path_info;
fastcgi_param SERVER_PROTOCOL   $server_protocol;
fastcgi_param REQUEST_SCHEME    $scheme;
fastcgi_param HTTPS             $https if_not_empty;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
fastcgi_param REMOTE_ADDR       $remote_addr;
fastcgi_param REMOTE_PORT       $remote_port;
fastcgi_param SERVER_ADDR       $server_addr;
fastcgi_param SERVER_PORT       $server_port;
fastcgi_param SERVER_NAME       $server_name;
fastcgi_request_buffering off;
fastcgi_buffering off;"""


@dataclass
class Site:
    """Where a front serves the example (pages) and the fixture (transfers)."""
    front: str
    port: int
    fixture_port: int
    fixture_prefix: str
    example: StandaloneProgram
    fixture: StandaloneProgram
    log_text: Callable[[], str]   # where the example's log lines land

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def fixture_path(self, path: str) -> str:
        return self.fixture_prefix + path


def _socket_directory(root: str) -> str:
    """ROOT/fcgi, owned by the programs' user: they create their sockets in it."""
    directory = os.path.join(root, "fcgi")
    os.makedirs(directory)
    uid, gid = user_ids(PROGRAM_USER)
    os.chown(directory, uid, gid)
    os.chmod(directory, 0o755)
    return directory


def _fastcgi_programs(srv: ApacheServer, example: str, fixture: str):
    sockets = _socket_directory(srv.root)
    example_socket = os.path.join(sockets, "example.sock")
    fixture_socket = os.path.join(sockets, "fixture.sock")
    programs = (StandaloneProgram(srv.install_program(example), ["--fastcgi", f"unix:{example_socket}"],
                                  srv.root, "example"),
                StandaloneProgram(srv.install_program(fixture), ["--fastcgi", f"unix:{fixture_socket}"],
                                  srv.root, "fixture"))
    programs[0].wait_socket(example_socket)
    programs[1].wait_socket(fixture_socket)
    return programs, example_socket, fixture_socket


def _nginx(srv: ApacheServer, example: str, fixture: str, stops: list) -> Site:
    (example_program, fixture_program), example_socket, fixture_socket = _fastcgi_programs(srv, example, fixture)
    stops += [example_program.stop, fixture_program.stop]
    nginx = NginxServer(srv.root)
    stops.insert(0, nginx.stop)
    params = "\n".join("    " + line for line in NGINX_PARAMS.splitlines())
    nginx.configure("\n".join([
        "location /fixture/ {",
        "    fastcgi_split_path_info ^(/fixture)(/.*)$;",
        params,
        f"    fastcgi_pass unix:{fixture_socket};",
        "}",
        "location / {",
        "    fastcgi_split_path_info ^()(/.*)$;",
        params,
        f"    fastcgi_pass unix:{example_socket};",
        "}",
    ]))
    nginx.start()
    # the program's log lines: its FastCGI stderr, which nginx logs at error level
    return Site("nginx", nginx.port, nginx.port, "/fixture", example_program, fixture_program,
                nginx.error_log_text)


def _proxy_fcgi(srv: ApacheServer, example: str, fixture: str, stops: list) -> Site:
    (example_program, fixture_program), example_socket, fixture_socket = _fastcgi_programs(srv, example, fixture)
    stops += [example_program.stop, fixture_program.stop]
    srv.configure("\n".join([
        # PATH_INFO = the URL's path below the mount, as under SwiftScriptAlias: without it
        # mod_proxy_fcgi sends the whole path as SCRIPT_NAME and no PATH_INFO.
        'SetEnvIf Request_URI "^" proxy-fcgi-pathinfo=unescape',
        # both forms: ProxyPass for the example, SetHandler in a <Location> for the fixture.
        # Each socket has a name of its own after fcgi://: mod_proxy knows its backends by that
        # URL, and a second socket behind the same fcgi://localhost would get the first's.
        'ProxyPass "/fixture/" "!"',
        f'ProxyPass "/" "unix:{example_socket}|fcgi://example/"',
        "<Location /fixture/>",
        f'    SetHandler "proxy:unix:{fixture_socket}|fcgi://fixture"',
        # PATH_INFO as Apache maps the URL below the mount, not the guess above
        '    SetEnvIf Request_URI "^" !proxy-fcgi-pathinfo',
        "</Location>",
    ]), extra_modules=("setenvif", "proxy", "proxy_fcgi"), with_module=False)
    srv.start(ready_path="/hello", expect_gateway=False)
    # the program's log lines: its FastCGI stderr, which mod_proxy_fcgi logs at error level (AH01071)
    return Site("proxy-fcgi", srv.port, srv.port, "/fixture", example_program, fixture_program,
                srv.error_log_text)


def _standalone(srv: ApacheServer, example: str, fixture: str, stops: list) -> Site:
    example_port, fixture_port = free_port(), free_port()
    example_program = StandaloneProgram(srv.install_program(example), ["--http", f"{HOST}:{example_port}"],
                                        srv.root, "example")
    fixture_program = StandaloneProgram(srv.install_program(fixture), ["--http", f"{HOST}:{fixture_port}"],
                                        srv.root, "fixture")
    stops += [example_program.stop, fixture_program.stop]
    example_program.wait_port(example_port)
    fixture_program.wait_port(fixture_port)
    return Site("standalone", example_port, fixture_port, "", example_program, fixture_program,
                example_program.output)


FRONTS = {"nginx": _nginx, "proxy-fcgi": _proxy_fcgi, "standalone": _standalone}


def _serve(front: str, request, new_server, example: str, fixture: str):
    srv = new_server(with_module=False)
    stops: list = []
    try:
        result = FRONTS[front](srv, example, fixture, stops)
        yield result
    finally:
        failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
        for stop in stops:
            stop()
        if failed:
            for name in ("example.log", "fixture.log", "nginx/error.log"):
                path = os.path.join(srv.root, name)
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        print(f"\n===== {name} =====\n" + "\n".join(f.read().splitlines()[-60:]))


@pytest.fixture(params=list(FRONTS))
def site(request, new_server, example, artifacts):
    yield from _serve(request.param, request, new_server, example, artifacts.fixture)


@pytest.fixture
def nginx_site(request, new_server, example, artifacts):
    yield from _serve("nginx", request, new_server, example, artifacts.fixture)


def _get(site: Site, path: str) -> requests.Response:
    return requests.get(site.url(path), timeout=30, headers={"Connection": "close"})


def test_pages_answer(site):
    home = _get(site, "/")
    assert home.status_code == 200 and home.headers["Content-Type"].startswith("text/plain"), home.text
    assert home.text.splitlines()[:2] == ["SwiftGateway example site", "group: standalone"], home.text

    hello = _get(site, "/hello")
    assert (hello.status_code, hello.text) == (200, "Hello world!\n")

    page = _get(site, "/json?a=1")
    assert page.status_code == 200 and page.headers["Content-Type"] == "application/json", page.text
    assert page.json() == {"group": "standalone", "method": "GET", "path": "/json", "query": "a=1"}

    streamed = _get(site, "/stream")
    assert streamed.status_code == 200
    assert streamed.text.splitlines() == [f"line {n} of 10" for n in range(1, 11)]

    posted = requests.post(site.url("/body"), data=b"x" * 1000, timeout=30)
    assert (posted.status_code, posted.text) == (200, "received 1000 bytes\n")
    too_long = requests.post(site.url("/body"), data=b"x" * (2 << 20), timeout=30)
    assert too_long.status_code == 413, too_long.text

    logged = _get(site, "/log")
    assert logged.status_code == 200
    wait_until(lambda: "the example's /log page was asked for" in site.log_text(), 10,
               message=f"the /log page's line in {site.front}'s log")

    # the fixture beside it sees its mount as SCRIPT_NAME/PATH_INFO
    env = requests.get(f"http://{HOST}:{site.fixture_port}{site.fixture_path('/env')}?x=1", timeout=30)
    assert env.status_code == 200 and env.text.startswith("{"), env.text
    assert env.json()["group"] == "standalone", env.text


def test_50_mib_upload_and_download_byte_exact(site):
    download = duplex_request(site.fixture_port, "GET", site.fixture_path(f"/bytes?n={TRANSFER}"), [], None)
    assert download.error == "" and download.status == 200, download
    assert download.received == TRANSFER and download.sha256 == expected_pattern_digest(TRANSFER), download

    upload = RandomUpload(TRANSFER)
    if site.front == "nginx":
        # nginx stops sending a request body once the response headers went out, so a page that
        # answers while it still reads (/echo) cannot get the whole body: the fixture's /upload
        # reads it all, then answers with its length.
        sent = duplex_request(site.fixture_port, "POST", site.fixture_path("/upload"), upload, TRANSFER)
        assert sent.error == "" and sent.status == 200, sent
        answer_ok = sent.received == len(f"{TRANSFER}\n")
    else:
        sent = duplex_request(site.fixture_port, "POST", site.fixture_path("/echo"), upload, TRANSFER)
        assert sent.error == "" and sent.send_error == "" and sent.status == 200, sent
        answer_ok = sent.received == TRANSFER and sent.sha256 == upload.sha.hexdigest()
    assert sent.sent == TRANSFER and answer_ok, sent
    note(f"{site.front}: 50 MiB download {download.seconds:.2f}s, upload "
         f"{'(read, then its length)' if site.front == 'nginx' else '(echoed back)'} {sent.seconds:.2f}s")


def test_short_load_without_errors(site):
    result = run_load(site.port, "/hello", total=1_000_000, concurrency=8, deadline=4)
    assert result.requests > 0 and not result.failures, result.summary() + f" {result.failures[:5]}"
    assert set(result.statuses) == {200}, result.summary()
    note(f"{site.front}: /hello, 8 connections: {result.summary()}")


def test_nginx_is_half_duplex(nginx_site):
    """Behind nginx a page that answers while it still reads gets its body only up to its
    answer: nginx stops sending the body once the response headers went out, and the echo
    stalls (README.md says so). The same page is whole under Apache and --http (above)."""
    upload = RandomUpload(TRANSFER)
    echo = duplex_request(nginx_site.fixture_port, "POST", nginx_site.fixture_path("/echo"), upload, TRANSFER,
                          stall_timeout=5)
    assert echo.status == 200, echo
    assert echo.error and echo.received < TRANSFER, echo
    note(f"nginx: 50 MiB /echo stalled after {echo.sent // MIB} MiB sent, {echo.received // 1024} KiB echoed")
