"""Correctness checks run before the throughput rows they vouch for.

* :func:`check_pipelined_order`: ``depth`` requests written at once on one raw socket
  (HTTP/1.1 pipelining), each for a distinct key holding a distinct value; the answers
  must come back complete and in the order asked.
* :func:`pipeline_body`: the Upstash ``POST /pipeline`` body of ``n`` commands.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Reply:
    """One HTTP response read off a pipelined connection."""

    status: int
    body: bytes


def read_replies(sock: socket.socket, count: int, timeout: float = 10.0) -> list[Reply]:
    """``count`` Content-Length-framed responses from ``sock``, in arrival order."""
    deadline = time.monotonic() + timeout
    buffer = b""
    replies: list[Reply] = []
    while len(replies) < count:
        head_end = buffer.find(HEAD_END)
        if head_end >= 0:
            head = buffer[:head_end].decode("latin-1")
            length = _content_length(head, len(replies))
            start = head_end + len(HEAD_END)
            if len(buffer) >= start + length:
                status = int(head.split(" ", 2)[1])
                replies.append(Reply(status, buffer[start : start + length]))
                buffer = buffer[start + length :]
                continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{len(replies)} of {count} pipelined responses in {timeout}s")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(replies)} of {count} responses")
        buffer += chunk
    return replies


def _content_length(head: str, index: int) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    raise ValueError(f"response {index + 1} has no Content-Length (chunked?):\n{head}")


def pipelined(port: int, paths: list[str], timeout: float = 10.0) -> list[Reply]:
    """GET every path of ``paths`` on one new connection, all written at once."""
    requests = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for path in paths
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(requests)
        return read_replies(sock, len(paths), timeout)


def check_pipelined_order(port: int, paths: list[str], expected: list[str]) -> None:
    """Send ``paths`` pipelined on one connection; response ``i`` must be a 200 whose
    body holds ``expected[i]`` (and no other expected value). AssertionError otherwise."""
    replies = pipelined(port, paths)
    for i, (reply, want) in enumerate(zip(replies, expected, strict=True)):
        others = [e for e in expected if e != want and e.encode() in reply.body]
        if reply.status != 200 or want.encode() not in reply.body or others:
            raise AssertionError(
                f"pipelined response {i + 1} of {len(paths)} ({paths[i]}): status "
                f"{reply.status}, body {reply.body[:120]!r}; expected {want!r} in order"
            )


def order_check_keys(depth: int) -> dict[str, str]:
    """Distinct keys and values for the order check: ``bench:order:<i>`` -> ``value-<i>-x``."""
    return {f"bench:order:{i}": f"value-{i}-x" for i in range(depth)}


def pipeline_body(command: list[str], n: int) -> str:
    """The JSON body of an Upstash ``POST /pipeline`` of ``n`` times ``command``."""
    return json.dumps([command] * n, separators=(",", ":"))
