"""JSON bodies shared by the protocols, the admin endpoints and the app.

JSON is written compact (``,`` and ``:`` separators) and as UTF-8 (``ensure_ascii``
off): smaller bodies, and the byte-exact shapes clients and ETags expect.

* ``json_bytes``: any JSON-able value as compact UTF-8 JSON.
* ``error_response``: the ``{"error": message}`` response every protocol answers with.
* ``nested_deeper_than``: the depth check every JSON *request* body passes before it
  is parsed (``MAX_JSON_DEPTH``). The stdlib parser recurses once per level, so
  ``'[' * 5000`` raised ``RecursionError`` (a 500); no command needs more than 2 levels
  (a pipeline: an array of arrays of strings).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from gateway_worker.exchange import Response

#: A value ``json_bytes`` can write (what ``json.loads`` gives back, read-only).
JsonValue: TypeAlias = (
    "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON."""
    return _encode(value).encode()


def error_response(
    status: int, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    """``{"error": message}`` with ``status``."""
    return Response(status, json_bytes({"error": message}), headers=headers or [])


def too_many_streams(limit: int) -> Response:
    """The 503 for one stream more than ``server.max_streams`` (every stream endpoint)."""
    return error_response(
        503,
        f"too many streams: server.max_streams={limit} are open in this worker",
        [("Retry-After", "1")],
    )


#: Deepest nesting of arrays/objects accepted in a JSON request body: far above what
#: any request needs (2: a pipeline), far below the parser's recursion limit (~1000).
MAX_JSON_DEPTH = 32

# A JSON string, escapes included (so that brackets inside strings are not counted).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TO_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"\\'))
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def nested_deeper_than(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``body`` nests arrays/objects more than ``limit`` deep.

    Only C-implemented passes over the bytes (no Python loop per byte): keep the
    brackets, then each pass removes the innermost ``[]`` pairs; a pair left after
    ``limit`` passes sits deeper than ``limit``. Brackets inside strings must not count:
    with no backslash in the body, every string reduces to ``""`` once all but quotes
    and brackets are dropped, and removing those ``""`` leaves no quote unless some
    string holds a bracket (the leftmost such string's opening quote follows a
    structural bracket after an even number of quotes, so it stays); only then are the
    strings cut out with a regular expression. Text that is not JSON may get either
    answer: the parser refuses it anyway.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case, whatever the size: too few brackets to nest
    brackets = body.translate(_TO_SQUARE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets or b"\\" in brackets:
        brackets = _STRING.sub(b"", body).translate(_TO_SQUARE, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    for _ in range(limit):
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            return False  # nothing left to remove (or unbalanced: not JSON)
        brackets = inner
    return b"[]" in brackets
