#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (Fuzz/corpus/<target>/): valid exchanges of every record
type and the malformed cases the unit and integration tests know. Run again after changing a case;
libFuzzer adds what it finds to a copy, never here (make fuzz)."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR, DATA = 1, 2, 3, 4, 5, 6, 7, 8
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
REQUEST_WAITING, REQUEST_STARTED = 0x57, 0x53
KEPT = 0x53474B41  # "SGKA": the worker keeps the connection


def record(rtype, content=b"", rid=1, padding=None, version=1):
    if padding is None:
        padding = -len(content) % 8
    return struct.pack(">BBHHBB", version, rtype, rid, len(content), padding, 0) + content + b"\0" * padding


def end_request(app_status=KEPT, protocol_status=0):
    return record(END_REQUEST, struct.pack(">IB3x", app_status, protocol_status))


def pairs(items):
    out = b""
    for name, value in items:
        for part in (name, value):
            out += bytes([len(part)]) if len(part) < 128 else struct.pack(">I", len(part) | 0x80000000)
        out += name + value
    return out


def response(head, body=b"hello"):
    return record(STDOUT, head + body) + record(STDOUT) + end_request()


OK_HEAD = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"

# [mode][seed][limit]: whole-or-random pieces, the pieces' seed, header-buffer-size (limit + 1) * 64
WORKER = {
    "hello": response(OK_HEAD),
    "hello-lf-only": response(b"Content-Type: text/plain\nX-A: b\n\n"),
    "padded": record(STDOUT, OK_HEAD + b"hi", padding=255) + record(STDOUT) + end_request(),
    "stderr-levels": record(STDERR, b"warn: disk\ninfo: x\ndebug: y\nplain\r\n" + b"z" * 600 + b"\n\\\x01\x7f")
    + response(OK_HEAD),
    "waiting-started": record(REQUEST_WAITING, struct.pack(">I", 4242))
    + record(REQUEST_STARTED)
    + response(OK_HEAD),
    "management": record(GET_VALUES_RESULT, pairs([(b"FCGI_MPXS_CONNS", b"0")]), rid=0) + response(OK_HEAD),
    "unknown-type": record(UNKNOWN_TYPE, b"\x63" + b"\0" * 7) + record(0x42, b"x" * 9) + response(OK_HEAD),
    "bad-version": record(STDOUT, OK_HEAD, version=2),
    "bad-request-id": record(STDOUT, OK_HEAD, rid=7),
    "bare-cr": response(b"X-A: a\rb\r\n\r\n"),
    "nul-in-value": response(b"X-A: a\0b\r\n\r\n"),
    "control-char": response(b"X-A: a\x01b\r\n\r\n"),
    "no-colon": response(b"X-A a\r\n\r\n"),
    "empty-name": response(b": a\r\n\r\n"),
    "space-in-name": response(b"X A: a\r\n\r\n"),
    "obs-fold": response(b"X-A: a\r\n b\r\n\r\n"),
    "location-crlf": response(b"Location: /a\r\nSet-Cookie: x=1\r\n\r\n"),
    "status-garbage": response(b"Status: 2x0 what\r\n\r\n"),
    "status-101": response(b"Status: 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
    "header-one-byte-records": b"".join(record(STDOUT, bytes([b])) for b in OK_HEAD) + record(STDOUT) + end_request(),
    "header-too-large": response(b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"),
    "end-before-stdout": end_request() + record(STDOUT, OK_HEAD),
    "end-mid-stdout": record(STDOUT, b"Content-Type: text/plain\r\n") + end_request(),
    "end-overloaded": end_request(app_status=0, protocol_status=2) + b"\0" * 3,
    "end-short": record(END_REQUEST, b"\0\0"),
    "stdout-after-end": response(OK_HEAD) + record(STDOUT, b"more"),
    "empty-stdout-first": record(STDOUT) + response(OK_HEAD),
}

# [mode][seed][seed]: whole, byte by byte or random pieces
BEGIN = record(BEGIN_REQUEST, struct.pack(">HB5x", 1, 1))
ENV = [
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b"/app/x?y=1"),
    (b"SCRIPT_NAME", b"/app"),
    (b"PATH_INFO", b"/x"),
    (b"QUERY_STRING", b"y=1"),
    (b"HTTP_HOST", b"example.test"),
    (b"HTTP_X_CUSTOM_THING", b"v"),
    (b"CONTENT_TYPE", b"text/plain"),
    (b"CONTENT_LENGTH", b"5"),
    (b"SWIFT_GATEWAY_TOKEN", b"0" * 64),
]
PARAMS_STREAM = pairs(ENV)
REQUEST = BEGIN + record(PARAMS, PARAMS_STREAM) + record(PARAMS) + record(STDIN, b"hello") + record(STDIN)
DECODER = {
    "request": REQUEST,
    "request-padded": BEGIN + record(PARAMS, PARAMS_STREAM, padding=200) + record(PARAMS) + record(STDIN),
    "abort": BEGIN + record(PARAMS) + record(ABORT_REQUEST),
    "get-values": record(GET_VALUES, pairs([(b"FCGI_MAX_CONNS", b""), (b"FCGI_MPXS_CONNS", b"")]), rid=0),
    "data-and-unknown": BEGIN + record(DATA, b"d") + record(0x63, b"?" * 3),
    "two-requests": REQUEST + REQUEST,
    "bad-version": record(BEGIN_REQUEST, b"\0" * 8, version=0),
    "truncated-header": REQUEST[:5],
    "truncated-content": REQUEST[:20],
    "large-stdin": BEGIN + record(PARAMS) + record(STDIN, b"x" * 3000, padding=0) + record(STDIN),
}

NAME_VALUE = {
    "cgi": PARAMS_STREAM,
    "long-lengths": pairs([(b"N" * 130, b"v" * 200), (b"E", b"")]),
    "four-byte-short": b"\x80\x00\x00\x01\x01Nv",
    "truncated-length": b"\x05\x80\x00",
    "past-end": b"\x05\x05abc",
    "invalid-utf8-name": pairs([(b"\xff\xfe", b"v")]),
    "invalid-utf8-value": pairs([(b"N", b"\xc3\x28")]),
    "repeated": pairs([(b"A", b"1"), (b"A", b"2"), (b"SWIFT_GATEWAY_TOKEN", b"t")]),
    "empty": b"",
}

CGI = {
    "cgi": PARAMS_STREAM,
    "https-no-uri": pairs([(b"REQUEST_METHOD", b"GET"), (b"HTTPS", b"on"), (b"SCRIPT_NAME", b"/s"), (b"QUERY_STRING", b"q")]),
    "no-method": pairs([(b"REQUEST_URI", b"/")]),
    "bad-method": pairs([(b"REQUEST_METHOD", b"G T"), (b"REQUEST_URI", b"/")]),
    "odd-fields": pairs(
        [
            (b"REQUEST_METHOD", b"GET"),
            (b"HTTP_", b"x"),
            (b"HTTP_A B", b"x"),
            (b"HTTP_X", b"a\r\nb"),
            (b"HTTP_\xc3\xa9", b"x"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"HTTP_COOKIE", b"b=2"),
            (b"CONTENT_LENGTH", b"-1"),
        ]
    ),
}


def write(target, cases, prefix):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    for name, data in cases.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(prefix + data)


def main():
    # worker_stream: pieces of random lengths, header-buffer-size 16 KiB (one 6 KiB)
    write("worker_stream", WORKER, bytes([2, 7, 255]))
    write("worker_stream", {"header-too-large-6k": WORKER["header-too-large"]}, bytes([2, 7, 99]))
    write("worker_stream", {k + "-bytewise": v for k, v in WORKER.items() if k in ("hello", "stderr-levels")}, bytes([1, 0, 255]))
    write("record_decoder", DECODER, bytes([2, 7, 9]))
    write("record_decoder", {"request-bytewise": REQUEST}, bytes([1, 0, 0]))
    write("name_value_pairs", NAME_VALUE, b"")
    write("cgi_request", CGI, b"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
