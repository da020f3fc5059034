"""The malformed requests of ``benchmarks/http_fuzz.py``, generated from a seed.

``generate(n, seed)`` returns ``n`` ``Case``s cycling through the categories below, each
with random parameters: the same seed gives the same bytes. A case is the bytes sent on
one new connection and whether the client half-closes after them (``shutdown(SHUT_WR)``:
an incomplete request must then be closed at once, not after the header timeout).

Categories: bad request lines, huge headers (long values, many headers, long names and
URLs), bad chunked encoding, invalid UTF-8 in paths and queries, NUL and control bytes,
absurd Content-Length, pipelined garbage, hostile JSON bodies (valid HTTP, hostile
Upstash body), random mutations of valid requests, random bytes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

VALID = (
    b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /get/fuzz:k HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
    b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n["SET","fuzz:k","v1"]\n',
    b"GET /webdis/GET/fuzz:k HTTP/1.1\r\nHost: x\r\n\r\n",
    b'POST /pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\n[["PING"],["PING"]]',
)


@dataclass(frozen=True)
class Case:
    """One connection's worth of hostile bytes."""

    category: str
    data: bytes
    half_close: bool = True


Gen = Callable[[random.Random], bytes]


def _bad_request_line(rnd: random.Random) -> bytes:
    method = rnd.choice(
        [b"GET", b"get", b"G\x00T", b"GE T", b"", b"X" * rnd.randint(20, 5000), b"PRI", b"\xff"]
    )
    target = rnd.choice([b"/", b"*", b"", b"/ping /x", b"http://[::1/", b"//../..", b"/%"])
    version = rnd.choice([b"HTTP/1.1", b"HTTP/9.9", b"HTTP/1.1x", b"", b"HTTP/", b"http/1.1"])
    sep = rnd.choice([b" ", b"  ", b"\t", b""])
    end = rnd.choice([b"\r\n", b"\n", b"\r", b"\r\r\n"])
    return method + sep + target + sep + version + end + b"Host: x" + end + end


def _huge_headers(rnd: random.Random) -> bytes:
    kind = rnd.randrange(4)
    if kind == 0:  # one long value
        return (
            b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * rnd.randint(60_000, 1_000_000) + b"\r\n\r\n"
        )
    if kind == 1:  # many headers
        return b"GET /ping HTTP/1.1\r\n" + b"X-A: b\r\n" * rnd.randint(2_000, 40_000) + b"\r\n"
    if kind == 2:  # a long name, no colon
        return b"GET /ping HTTP/1.1\r\n" + b"N" * rnd.randint(10_000, 300_000) + b"\r\n\r\n"
    return b"GET /" + b"u" * rnd.randint(60_000, 500_000) + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def _bad_chunked(rnd: random.Random) -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    body = rnd.choice(
        [
            b"zz\r\nab\r\n0\r\n\r\n",
            b"-5\r\nabcde\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\nab\r\n0\r\n\r\n",
            b"3\r\nabcdef\r\n0\r\n\r\n",  # chunk longer than its size
            b"3;" + b"e" * 20_000 + b"\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc0\r\n\r\n",  # missing CRLF after the data
            b"0\r\n" + b"X-Trailer: t\r\n" * rnd.randint(1, 20_000) + b"\r\n",
            b"0\r\nX-T: " + b"t" * rnd.randint(10_000, 200_000) + b"\r\n\r\n",
            b'5\r\n["PI\r\n',  # truncated
        ]
    )
    extra = rnd.choice(
        [b"", b"Content-Length: 4\r\n", b"Transfer-Encoding: chunked\r\n", b"TE: x\r\n"]
    )
    te = rnd.choice([b"", b"Transfer-Encoding: gzip, chunked\r\n", b"Transfer-Encoding: chunk\r\n"])
    return head + extra + te + b"\r\n" + body


def _invalid_utf8_path(rnd: random.Random) -> bytes:
    junk = bytes(rnd.randrange(0x80, 0x100) for _ in range(rnd.randint(1, 12)))
    pct = b"".join(b"%%%02X" % rnd.randrange(0x80, 0x100) for _ in range(rnd.randint(1, 8)))
    path = rnd.choice(
        [
            b"/" + junk,
            b"/get/" + pct,
            b"/set/" + pct + b"/" + pct,
            b"/webdis/GET/" + pct,
            b"/webdis/SET/" + pct + b"/" + junk,
            b"/ping?" + pct + b"=" + junk,
            b"/get/%C0%AF",
            b"/%ED%A0%80",  # a surrogate, UTF-8 encoded
            b"/webdis/" + pct + b".json",
        ]
    )
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def _nul_bytes(rnd: random.Random) -> bytes:
    base = bytearray(rnd.choice(VALID))
    for _ in range(rnd.randint(1, 4)):
        base.insert(rnd.randrange(len(base)), rnd.choice([0, 0, 1, 0x7F, 0x0B, 0x1B]))
    return bytes(base)


def _absurd_content_length(rnd: random.Random) -> bytes:
    value = rnd.choice(
        [b"-1", b"99999999999999999999999999", b"1e3", b"abc", b"+5", b"0x10", b" 5", b"5 5",
         b"18446744073709551616", b"9" * 400, b"", b"4, 5", b"1000000000000"]
    )  # fmt: skip
    dup = rnd.choice([b"", b"Content-Length: 3\r\n", b"Content-Length: 5\r\n"])
    body = rnd.choice([b"", b'["PING"]', b"x" * 100])
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n" + dup + b"\r\n" + body
    )


def _pipelined_garbage(rnd: random.Random) -> bytes:
    garbage = rnd.choice(
        [b"GARBAGE\r\n\r\n", b"\x00\x01\x02", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"\r\n" * 50,
         bytes(rnd.randrange(256) for _ in range(64))]
    )  # fmt: skip
    parts = [rnd.choice(VALID) for _ in range(rnd.randint(1, 3))]
    parts.insert(rnd.randint(0, len(parts)), garbage)
    return b"".join(parts)


def _hostile_json(rnd: random.Random) -> bytes:
    body = rnd.choice(
        [
            b"[" * rnd.randint(33, 20_000) + b"]" * rnd.randint(0, 20_000),
            b'{"a":' * rnd.randint(100, 3_000) + b"1" + b"}" * 10,
            b'["SET","k",' + b"9" * rnd.randint(1_000, 50_000) + b"]",
            b'["' + b"\\u" * rnd.randint(1, 1000) + b'"]',
            b'["GET","\\ud800"]',
            b"[" + b'"a",' * rnd.randint(20_000, 60_000) + b'"a"]',
            b'\xff\xfe[\x00"\x00]',
            b'[["GET"],' * 50 + b"1]",
            b"[NaN, Infinity, -Infinity]",
        ]
    )
    path = rnd.choice([b"/", b"/pipeline", b"/multi-exec"])
    return b"POST %b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (path, len(body), body)


def _mutated(rnd: random.Random) -> bytes:
    data = bytearray(rnd.choice(VALID))
    for _ in range(rnd.randint(1, 8)):
        at = rnd.randrange(len(data))
        action = rnd.randrange(3)
        if action == 0:
            data[at] = rnd.randrange(256)
        elif action == 1:
            data.insert(at, rnd.randrange(256))
        elif len(data) > 1:
            del data[at]
    return bytes(data)


def _random_bytes(rnd: random.Random) -> bytes:
    return bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 2_000)))


CATEGORIES: tuple[tuple[str, Gen], ...] = (
    ("bad_request_line", _bad_request_line),
    ("huge_headers", _huge_headers),
    ("bad_chunked", _bad_chunked),
    ("invalid_utf8_path", _invalid_utf8_path),
    ("nul_bytes", _nul_bytes),
    ("absurd_content_length", _absurd_content_length),
    ("pipelined_garbage", _pipelined_garbage),
    ("hostile_json", _hostile_json),
    ("mutated", _mutated),
    ("random_bytes", _random_bytes),
)


def _body_missing(data: bytes) -> bool:
    """A head announcing more body than follows it: the server rightly waits for the
    rest (up to ``server.request_timeout_seconds``) unless the client half-closes."""
    head, _, body = data.partition(b"\r\n\r\n")
    for value in re.findall(rb"(?im)^content-length:[ \t]*([0-9]+)[ \t]*\r?$", head):
        if int(value) > len(body):
            return True
    return False


def generate(n: int, seed: int = 1) -> list[Case]:
    """``n`` cases, the categories in turn; one in four is sent without a half-close
    when it is complete enough to be answered at once (a request line that ends, and
    no announced body missing)."""
    rnd = random.Random(seed)
    cases = []
    for i in range(n):
        category, gen = CATEGORIES[i % len(CATEGORIES)]
        data = gen(rnd)
        keep_open = data.endswith(b"\r\n\r\n") and category not in ("huge_headers",)
        # The draw is made for every such case, so that the same seed gives the same bytes.
        keep_open = keep_open and rnd.random() < 0.25 and not _body_missing(data)
        cases.append(Case(category, data, half_close=not keep_open))
    return cases
