"""The WSGI application of `make bench`'s wsgi-daemon configuration.

It mirrors the pages of the test fixture program (Tests/Fixtures/GatewayFixture), chosen by
the last segment of PATH_INFO:

* ``/hello``      exactly ``Hello world!\\n`` (13 bytes, text/plain)
* ``/bytes?n=N``  N bytes (byte i is i % 256), yielded 64 KiB at a time, with Content-Length
* ``/upload``     reads the whole request body in 64 KiB reads, keeps none of it,
                  answers its length and a newline

Run by Debian's mod_wsgi (libapache2-mod-wsgi-py3) in daemon mode
(``WSGIDaemonProcess bench processes=2 threads=15``); see bench/README.md.
"""

from urllib.parse import parse_qs

HELLO = b"Hello world!\n"
CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)


def _bytes(n):
    while n > 0:
        k = min(n, CHUNK)
        yield PATTERN if k == CHUNK else PATTERN[:k]
        n -= k


def application(environ, start_response):
    path = environ.get("PATH_INFO", "") or ""
    segments = [s for s in path.split("/") if s]
    page = segments[-1] if segments else ""

    if page == "hello":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(HELLO)))])
        return [HELLO]

    if page == "bytes":
        try:
            n = max(0, int(parse_qs(environ.get("QUERY_STRING", "")).get("n", ["1024"])[0]))
        except ValueError:
            n = 1024
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n))])
        return _bytes(n)

    if page == "upload":
        stream = environ["wsgi.input"]
        total = 0
        while True:
            try:
                data = stream.read(CHUNK)
            except OSError:
                # The client went away mid-body (wrk closes its connections when its
                # duration ends); mod_wsgi has logged it already, skip the traceback.
                start_response("400 Bad Request", [("Content-Type", "text/plain"),
                                                   ("Content-Length", "0")])
                return [b""]
            if not data:
                break
            total += len(data)
        body = b"%d\n" % total
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    body = b"Not Found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]
