"""JSON response bodies shared by the protocols, the admin endpoints and the app.

JSON is written compact (``,`` and ``:`` separators) and as UTF-8 (``ensure_ascii``
off): smaller bodies, and the byte-exact shapes clients and ETags expect.

* ``json_bytes``: any JSON-able value as compact UTF-8 JSON.
* ``error_response``: the ``{"error": message}`` response every protocol answers with.
"""

from __future__ import annotations

import json
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
