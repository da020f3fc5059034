"""How an Upstash result is encoded in a reply body (API.md §1).

* text JSON (the default): ``result_json`` for a single command, ``to_text`` for each
  result of a pipeline; strings as text, invalid UTF-8 replaced by U+FFFD.
* base64 (``Upstash-Encoding: base64``): ``to_base64``, every string base64 of its raw
  bytes, recursively; integers, nils and errors as they are, ``"OK"`` kept as is.
* RESP2 (``Upstash-Response-Format: resp2``): the raw reply bytes, written by
  ``gateway_worker.redis.wire.encode_reply``.
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Callable

from gateway_worker.protocols.json_bodies import JsonValue, json_bytes
from gateway_worker.redis.values import NilArray, ReplyError, RespValue, Status

# The C string encoder json_bytes uses for str values (quotes included).
_string: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)


def result_json(value: RespValue) -> bytes:
    """``{"result": value}`` as text JSON, with fast paths for the common scalars."""
    if isinstance(value, bytes):
        return b'{"result":' + _string(value.decode("utf-8", "replace")).encode() + b"}"
    if value is None or isinstance(value, NilArray):
        return b'{"result":null}'
    if type(value) is int:
        return b'{"result":%d}' % value
    return json_bytes({"result": to_text(value)})


def to_text(value: RespValue) -> JsonValue:
    """A reply as JSON-able data: strings as text (invalid UTF-8 becomes U+FFFD)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [to_text(v) for v in value]
    if isinstance(value, NilArray):
        return None  # JSON has one null; only `resp2` keeps nil arrays apart
    # int, None, ReplyError (a str: nested errors are rendered as their message)
    return value


def to_base64(value: RespValue) -> JsonValue:
    """A reply as JSON-able data with every string base64-encoded (Upstash-Encoding).

    Integers, nils and errors stay as they are. The status ``OK`` stays ``"OK"``: the
    Upstash clients decode every string except that one.
    """
    if isinstance(value, Status):
        return "OK" if value == b"OK" else b64encode(value).decode("ascii")
    if isinstance(value, bytes):
        return b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [to_base64(v) for v in value]
    if isinstance(value, ReplyError):
        return str(value)
    if isinstance(value, NilArray):
        return None
    return value
