"""A finished response leaves before httpd looks for the client's next request (issue 3).

After a request httpd makes one non-blocking read of the client's connection
(ap_check_pipeline): if the next request is there, the same thread serves it; if not, the
connection goes back to the event MPM's listener, a round trip through epoll and a thread
hand-off. A short response that is not a file waits in the core output filter until after
that read unless it ends with a flush, so the client, which sends its next request when it
has the answer, could never be found ready. The order is watched with strace on Apache's
children: on the client's socket the response's write must come before the read that
finds nothing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile

from sg_harness import wait_until


def _site(s) -> str:
    return "\n".join([
        s.daemon("site", "processes=1", "threads=2"),
        "SwiftProcessGroup site",
        f"SwiftScriptAlias / {s.bin}",
    ])


def _get(conn: socket.socket, path: str) -> bytes:
    """One request on a kept-alive connection; its whole response (Content-Length framed)."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_short_response_is_written_before_httpd_looks_for_the_next_request(apache):
    srv = apache(_site)
    traces = tempfile.mkdtemp(prefix="sg-strace-")
    attach = [arg for pid in srv.apache_children() for arg in ("-p", str(pid))]
    # -f with -p: every thread of each child, -ff: a file per thread (no interleaved calls);
    # -s: enough of each buffer to find the request.
    tracer = subprocess.Popen(
        ["strace", "-f", "-ff", "-qq", "-s", "64", "-e", "trace=read,write,writev",
         "-o", os.path.join(traces, "t"), *attach],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )

    def threads() -> dict[str, list[str]]:
        found = {}
        for name in os.listdir(traces):
            with open(os.path.join(traces, name), errors="replace") as f:
                found[name] = f.read().splitlines()
        return found

    def traced(request: str) -> list[str] | None:
        """The calls of the thread that read `request`, from that read on."""
        for lines in threads().values():
            for i, line in enumerate(lines):
                if f'"GET {request} ' in line:
                    return lines[i:]
        return None

    def attached(warm: socket.socket) -> list[str] | None:
        if tracer.poll() is not None:   # e.g. ptrace not permitted: say so, not "timed out"
            raise AssertionError(f"strace exited with {tracer.returncode}: {tracer.stderr.read()}")
        _get(warm, "/hello?warm")
        return traced("/hello?warm")

    try:
        # Attached once a request's read shows up (each child's threads are traced by then).
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as warm:
            wait_until(lambda: attached(warm), timeout=20, interval=0.2, message="strace to show a request")

        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
            response = _get(conn, "/hello?probe")
            assert response.startswith(b"HTTP/1.1 200"), response[:200]

            # The connection stays open: the thread's last look at it is a read that finds nothing.
            def on_the_connection() -> list[str] | None:
                calls = traced("/hello?probe")
                if not calls:
                    return None
                fd = re.match(r"read\((\d+),", calls[0]).group(1)
                mine = [line for line in calls if re.match(rf"(read|write|writev)\({fd},", line)]
                return mine if any("EAGAIN" in line for line in mine) else None

            calls = wait_until(on_the_connection, timeout=20,
                               message="the empty read of the client's connection after the request")
    finally:
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        shutil.rmtree(traces, ignore_errors=True)

    empty_read = next(i for i, line in enumerate(calls) if "EAGAIN" in line)
    print("\n".join(calls[:empty_read + 1]))
    assert any(line.startswith("write") for line in calls[1:empty_read]), (
        "the response was still held when httpd looked for the next request:\n" + "\n".join(calls))
