"""A Hummingbird 2 router application (Examples/HummingbirdSite) through SwiftGatewayHummingbird.

Under Apache: a path parameter, the application's own request context filled by a middleware,
a JSON body decoded and a JSON answer encoded, the router's 404, thrown HTTPErrors, Hummingbird's
upload limit (413); a 50 MiB upload (echoed, and read into a CRC-32) and a 50 MiB download
byte-exact, with the worker's RSS far below the size of either; a route given up on at
request-timeout (504, its task ended, the worker serving on); a short load with no failed
request. Started by hand, the same program is a plain Hummingbird server, and with `--http` the
gateway's own server: the same pages answer the same.

Needs SG_HUMMINGBIRD (the built HummingbirdSite, `make` builds it); skipped without it."""

from __future__ import annotations

import hashlib
import os
import re
import time
import zlib
from collections.abc import Iterator

import pytest
import requests

from sg_harness import (HOST, MIB, RssMonitor, StandaloneProgram, _built_file, duplex_request,
                        expected_pattern_digest, free_port, note, run_load)

TRANSFER = 50 * MIB
# A worker that held a 50 MiB body would grow by at least that much.
RSS_LIMIT = 20 * MIB


@pytest.fixture(scope="session")
def hummingbird() -> str:
    if not os.environ.get("SG_HUMMINGBIRD"):
        pytest.skip("SG_HUMMINGBIRD is not set (absolute path of the built HummingbirdSite; `make` builds it)")
    program, problem = _built_file("SG_HUMMINGBIRD", "the built Hummingbird example, HummingbirdSite")
    if problem:
        pytest.fail(problem, pytrace=False)
    return program


def _site(apache, program: str, processes: int = 2, *options: str):
    return apache(lambda s: "\n".join([
        s.daemon("hb", f"processes={processes}", "threads=10", *options),
        "SwiftProcessGroup hb",
        f"SwiftScriptAlias / {s.install_program(program)}",
    ]), ready_path="/hello", expect_gateway=False)


def _worker(srv) -> int:
    workers = srv.wait_workers("hb", 1)
    assert len(workers) == 1, workers
    return workers[0]


class CheckedUpload:
    """Random chunks of `total` bytes, never all in memory, with their CRC-32 and SHA-256."""

    def __init__(self, total: int):
        self.total, self.crc32, self.sha = total, 0, hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        produced = 0
        while produced < self.total:
            chunk = os.urandom(min(MIB, self.total - produced))
            self.crc32 = zlib.crc32(chunk, self.crc32)
            self.sha.update(chunk)
            produced += len(chunk)
            yield chunk


def _check_pages(base: str) -> None:
    """The router's pages, as the same program answers them under any server."""
    hello = requests.get(base + "/hello", timeout=30)
    assert (hello.status_code, hello.text) == (200, "Hello world!\n")
    assert hello.headers["X-Site-Middleware"] == "greeting=Hello"

    greet = requests.get(base + "/greet/ann", headers={"Accept-Language": "fr-FR"}, timeout=30)
    assert (greet.status_code, greet.text) == (200, "Bonjour, ann!\n")
    assert greet.headers["X-Site-Middleware"] == "greeting=Bonjour"

    order = requests.post(base + "/orders", json={"item": "tea", "quantity": 3}, timeout=30)
    assert order.status_code == 200 and order.headers["Content-Type"].startswith("application/json"), order.text
    assert order.json() == {"item": "tea", "quantity": 3, "total": 750}
    known = requests.get(base + "/orders/1", timeout=30)
    assert known.status_code == 200 and known.json() == {"item": "tea", "quantity": 2, "total": 500}

    # thrown HTTPErrors: the application's own (404, 422) and Hummingbird's (400 for a bad parameter)
    missing = requests.get(base + "/orders/9", timeout=30)
    assert missing.status_code == 404 and "no order 9" in missing.text, missing.text
    invalid = requests.post(base + "/orders", json={"item": "tea", "quantity": 0}, timeout=30)
    assert invalid.status_code == 422, invalid.text
    assert requests.get(base + "/orders/abc", timeout=30).status_code == 400
    # the router's own 404 (no route: its middleware does not run)
    nowhere = requests.get(base + "/nowhere", timeout=30)
    assert nowhere.status_code == 404 and "X-Site-Middleware" not in nowhere.headers
    # a JSON body over the context's maxUploadSize (64 KiB)
    too_long = requests.post(base + "/orders", data=b" " * (128 * 1024), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert too_long.status_code == 413, too_long.text

    # the client's address: REMOTE_ADDR under the gateway, the connection's peer by itself
    assert requests.get(base + "/client", timeout=30).text == "127.0.0.1\n"

    upload = requests.post(base + "/upload", data=b"abc" * 1000, timeout=30)
    assert upload.json() == {"bytes": 3000, "crc32": zlib.crc32(b"abc" * 1000)}
    download = requests.get(base + "/download?bytes=1000", timeout=30)
    assert download.content == bytes(i % 256 for i in range(1000))


def test_router_pages_through_apache(apache, hummingbird):
    srv = _site(apache, hummingbird)
    _check_pages(srv.url(""))
    # a JSON body's answer short enough to go out with its head, with Hummingbird's length
    order = requests.post(srv.url("/orders"), json={"item": "tea", "quantity": 3}, timeout=30)
    assert order.headers["Content-Length"] == str(len(order.content))


def test_50_mib_upload_and_download_byte_exact_and_streamed(apache, hummingbird):
    srv = _site(apache, hummingbird, processes=1)
    worker = _worker(srv)
    with RssMonitor(lambda: [worker]) as rss:
        download = duplex_request(srv.port, "GET", f"/download?bytes={TRANSFER}", [], None)
        assert download.error == "" and download.status == 200, download
        assert download.received == TRANSFER and download.sha256 == expected_pattern_digest(TRANSFER), download

        echoed = CheckedUpload(TRANSFER)
        echo = duplex_request(srv.port, "POST", "/echo", echoed, TRANSFER)
        assert echo.error == "" and echo.send_error == "" and echo.status == 200, echo
        assert echo.sent == TRANSFER and echo.received == TRANSFER, echo
        assert echo.sha256 == echoed.sha.hexdigest(), echo

        # chunked (no Content-Length), read by the application into its length and CRC-32
        read = CheckedUpload(TRANSFER)
        summary = requests.post(srv.url("/upload"), data=iter(read), timeout=300)
        assert summary.status_code == 200, summary.text
        assert summary.json() == {"bytes": TRANSFER, "crc32": read.crc32}
    growth = rss.growth()[worker]
    note(f"hummingbird: 50 MiB download {download.seconds:.2f}s, echo {echo.seconds:.2f}s; "
         f"worker RSS +{growth / MIB:.1f} MiB ({rss.report()})")
    assert growth < RSS_LIMIT, rss.report()


def test_short_load_without_errors(apache, hummingbird):
    srv = _site(apache, hummingbird)
    for path in ("/hello", "/greet/load"):
        result = run_load(srv.port, path, total=1_000_000, concurrency=8, deadline=4)
        assert result.requests > 0 and not result.failures, result.summary() + f" {result.failures[:5]}"
        assert set(result.statuses) == {200}, result.summary()
        note(f"hummingbird {path}, 8 connections: {result.summary()}")


def test_request_timeout_cancels_a_route_and_its_worker_goes_on(apache, hummingbird):
    """The gateway's cancellation reaches the route's task, as for the plain API: 504, the
    Task.sleep ends, the worker is not recycled as stuck."""
    srv = _site(apache, hummingbird, 1, "request-timeout=2")
    worker = _worker(srv)
    since = srv.log_offset()
    started = time.monotonic()
    given_up = requests.get(srv.url("/wait?ms=60000"), timeout=60)
    seconds = time.monotonic() - started
    assert given_up.status_code == 504 and seconds < 6, (given_up.status_code, seconds, given_up.text)
    srv.wait_for_log(re.compile(r"SG1122: .*GET /wait"), since=since)
    waited = requests.get(srv.url("/wait?ms=100"), timeout=30)
    assert (waited.status_code, waited.text) == (200, "waited 100 ms\n")
    # a stuck request would have its worker recycled a second after the cancel (SG1013)
    time.sleep(1.5)   # not a synchronisation: the time within which a stuck worker is recycled
    assert srv.workers("hb") == [worker] and "SG1013" not in srv.error_log_text(since), srv.error_log_tail()
    note(f"hummingbird: /wait given up on at request-timeout=2: 504 after {seconds:.2f}s")


@pytest.mark.parametrize("mode", ["hummingbird", "--http"])
def test_started_by_hand(new_server, hummingbird, mode):
    """Without Apache: a plain Hummingbird server (`--port`), or the gateway's `--http`."""
    srv = new_server(with_module=False)
    port = free_port()
    arguments = ["--port", str(port)] if mode == "hummingbird" else ["--http", f"{HOST}:{port}"]
    program = StandaloneProgram(srv.install_program(hummingbird), arguments, srv.root, "hummingbird")
    try:
        program.wait_port(port)
        _check_pages(f"http://{HOST}:{port}")
        output = program.output()
        if mode == "hummingbird":
            assert "Server started and listening on 127.0.0.1:" in output, output
        else:
            assert "SG1202" in output, output
    finally:
        program.stop()
    assert program.proc.returncode == 0 or program.proc.returncode == -15, program.output()
