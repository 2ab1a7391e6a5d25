"""The example site (Examples/ExampleSite) as `make run` serves it: every page answers.

The groups and mounts are conf/example-site.conf.in's, so the example and its configuration
cannot drift apart from what the README promises."""

from __future__ import annotations

import os

import requests

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "example-site.conf.in")


def _example_site(srv, program: str) -> str:
    """conf/example-site.conf.in from its first SwiftDaemonProcess on, each group tagged."""
    with open(TEMPLATE) as f:
        lines = f.read().replace("@PROGRAM@", program).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("SwiftDaemonProcess "))
    return "\n".join(srv.daemon(*line.split()[1:]) if line.startswith("SwiftDaemonProcess ") else line
                     for line in lines[first:])


def test_every_page_of_the_example_site_answers(apache, example):
    srv = apache(lambda s: _example_site(s, s.install_program(example)), ready_path="/hello",
                 expect_gateway=False)

    home = srv.get("/")
    assert home.status_code == 200 and home.headers["Content-Type"].startswith("text/plain")
    assert home.text.splitlines()[:2] == ["SwiftGateway example site", "group: site"], home.text
    admin = srv.get("/admin/")
    assert admin.status_code == 200 and "group: site-admin" in admin.text.splitlines(), admin.text

    hello = srv.get("/hello")
    assert (hello.status_code, hello.text) == (200, "Hello world!\n")

    page = srv.get("/json?a=1")
    assert page.status_code == 200 and page.headers["Content-Type"] == "application/json"
    assert page.json() == {"group": "site", "method": "GET", "path": "/json", "query": "a=1"}

    streamed = srv.get("/stream")
    assert streamed.status_code == 200
    assert streamed.text.splitlines() == [f"line {n} of 10" for n in range(1, 11)]

    posted = requests.post(srv.url("/body"), data=b"x" * 1000, timeout=30)
    assert (posted.status_code, posted.text) == (200, "received 1000 bytes\n")
    too_long = requests.post(srv.url("/body"), data=b"x" * (2 << 20), timeout=30)
    assert too_long.status_code == 413, too_long.text

    offset = srv.log_offset()
    logged = srv.get("/log")
    assert logged.status_code == 200
    srv.wait_for_log("the example's /log page was asked for", since=offset)

