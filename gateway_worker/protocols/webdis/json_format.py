"""Webdis's JSON format (the default, ``.json``, ``.js``), byte for byte as Webdis
writes it (src/formats/json.c).

* ``render_json``: ``{"<verb as sent>": V}`` compact; status/error ``[true|false,"msg"]``;
  HGETALL as an object; INFO as an object of its ``field:value`` lines; XRANGE,
  XREVRANGE, XCLAIM, XREAD(GROUP), XPENDING and GEORADIUS* WITH... as Webdis's objects;
  JSONP wraps it as ``cb(<json>);\\n``.
* ``render_json_scalar``: the same bytes for the common scalar replies, faster (the
  fast path's renderer).

Deliberate differences from Webdis (its behaviour there is a C-string artefact):

* Invalid UTF-8 in a JSON string becomes U+FFFD (Webdis drops the value, answering ``{}``);
  a NUL byte is kept as ``\\u0000`` (Webdis truncates the string there).
* INFO: comment (``# Server``) and blank lines are skipped, each ``field:value`` line is
  one member (Webdis glues comment lines into the following key).
* Object member order is Redis's reply order (Webdis's old jansson uses hash order).
"""

from __future__ import annotations

import enum
import json
from json.encoder import encode_basestring

from gateway_worker.protocols.json_bodies import JsonValue
from gateway_worker.protocols.webdis.formats import as_text, is_bulk, parse_info
from gateway_worker.redis.values import NilArray, ReplyError, RespValue, Status

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _expand_array(items: list[RespValue]) -> list[JsonValue]:
    out: list[JsonValue] = []
    for item in items:
        if isinstance(item, bytes):  # bulk and status alike
            out.append(as_text(item))
        elif isinstance(item, int):
            out.append(item)
        elif isinstance(item, list):
            out.append(_expand_array(item))
        else:  # nil, and errors nested in arrays
            out.append(None)
    return out


def _keyvalue(items: list[RespValue]) -> dict[str, JsonValue] | None:
    if len(items) % 2:
        return None
    obj: dict[str, JsonValue] = {}
    for key, value in zip(items[::2], items[1::2], strict=True):
        if not is_bulk(key):
            return None
        assert isinstance(key, bytes)
        if value is None or isinstance(value, NilArray):
            obj[as_text(key)] = None
        elif is_bulk(value):
            assert isinstance(value, bytes)
            obj[as_text(key)] = as_text(value)
        elif isinstance(value, int):
            obj[as_text(key)] = value
        elif isinstance(value, list):
            obj[as_text(key)] = _expand_array(value)
        else:
            return None
    return obj


def _single_stream(items: list[RespValue]) -> list[JsonValue]:
    out: list[JsonValue] = []
    for entry in items:
        if not isinstance(entry, list) or len(entry) < 2:
            continue
        entry_id, fields = entry[0], entry[1]
        if not is_bulk(entry_id) or not entry_id:
            continue
        if not isinstance(fields, list) or len(fields) < 2:
            continue
        assert isinstance(entry_id, bytes)
        out.append({"id": as_text(entry_id), "msg": _keyvalue(fields)})
    return out


def _xread(items: list[RespValue]) -> dict[str, JsonValue] | None:
    if not items:
        return None
    obj: dict[str, JsonValue] = {}
    for entry in items:
        if not isinstance(entry, list) or len(entry) < 2:
            continue
        stream, messages = entry[0], entry[1]
        if not is_bulk(stream) or not stream or not isinstance(messages, list):
            continue
        assert isinstance(stream, bytes)
        obj[as_text(stream)] = _single_stream(messages)
    return obj


def _xpending(items: list[RespValue]) -> JsonValue:
    if len(items) >= 4 and isinstance(items[0], int) and not isinstance(items[0], bool):
        summary: dict[str, JsonValue] = {"msgs": items[0]}
        for name, value in (("idmin", items[1]), ("idmax", items[2])):
            if is_bulk(value):
                assert isinstance(value, bytes)
                summary[name] = as_text(value)
        consumers = items[3]
        if not isinstance(consumers, list):
            return summary
        owners: dict[str, JsonValue] = {}
        for entry in consumers:
            if not isinstance(entry, list) or len(entry) < 2 or not is_bulk(entry[0]):
                continue
            owner, count = entry[0], entry[1]
            assert isinstance(owner, bytes)
            if is_bulk(count):
                assert isinstance(count, bytes)
                owners[as_text(owner)] = as_text(count)
            elif isinstance(count, int):
                owners[as_text(owner)] = count
        summary["msgsperconsumer"] = owners
        return summary
    out: list[JsonValue] = []
    for entry in items:
        if not isinstance(entry, list) or len(entry) < 4:
            continue
        obj: dict[str, JsonValue] = {}
        for index, name, want_int in (
            (0, "id", False),
            (1, "owner", False),
            (2, "elapsedtime", True),
            (3, "deliveries", True),
        ):
            value = entry[index]
            if want_int and isinstance(value, int):
                obj[name] = value
            elif not want_int and is_bulk(value):
                assert isinstance(value, bytes)
                obj[name] = as_text(value)
        out.append(obj)
    return out


def _georadius(items: list[RespValue]) -> list[JsonValue]:
    out: list[JsonValue] = []
    for entry in items:
        if not isinstance(entry, list) or not entry:
            continue
        obj: dict[str, JsonValue] = {}
        if isinstance(entry[0], bytes):
            obj["name"] = as_text(entry[0])
        for value in entry[1:]:
            if isinstance(value, int):
                obj["hash"] = value
            elif is_bulk(value):
                assert isinstance(value, bytes)
                obj["dist"] = as_text(value)
            elif isinstance(value, list) and len(value) == 2 and all(is_bulk(v) for v in value):
                obj["coords"] = [as_text(v) for v in value if isinstance(v, bytes)]
        out.append(obj)
    return out


class _Missing(enum.Enum):
    """The sentinel type of ``_MISSING`` (an enum, so that ``is`` narrows it away)."""

    MISSING = "missing"


_MISSING = _Missing.MISSING


def json_value(verb: str, reply: RespValue) -> JsonValue | _Missing:
    """The JSON value Webdis puts under the verb; ``_MISSING`` where Webdis omits it."""
    upper = verb.upper()
    if isinstance(reply, ReplyError):
        return [False, str(reply)]
    if isinstance(reply, Status):
        return [True, as_text(reply)]
    if isinstance(reply, bytes):
        return parse_info(reply) if upper == "INFO" else as_text(reply)
    if isinstance(reply, int):
        return reply
    if isinstance(reply, list):
        special: JsonValue | _Missing = _MISSING
        if upper == "HGETALL":
            special = _keyvalue(reply)
        elif upper in ("XRANGE", "XREVRANGE") or (
            upper == "XCLAIM" and reply and isinstance(reply[0], list)
        ):
            special = _single_stream(reply)
        elif upper in ("XREAD", "XREADGROUP"):
            special = _xread(reply)
        elif upper == "XPENDING":
            special = _xpending(reply)
        elif upper.startswith("GEORADIUS") and reply and isinstance(reply[0], list):
            special = _georadius(reply)
        else:
            return _expand_array(reply)
        return _MISSING if special is None else special
    return None


def render_json_scalar(verb: str, is_info: bool, reply: RespValue) -> bytes | None:
    """``render_json(verb, reply)`` for the common scalar replies; None for the rest.

    ``is_info``: ``verb.upper() == "INFO"`` (its bulk reply is parsed, not a string).
    Exact types only (a ``bytes`` subclass other than ``Status`` takes the generic way).
    """
    kind = type(reply)
    value: str
    if kind is bytes and not is_info:
        assert isinstance(reply, bytes)
        value = encode_basestring(reply.decode("utf-8", "replace"))
    elif kind is Status:
        assert isinstance(reply, Status)
        value = "[true," + encode_basestring(reply.decode("utf-8", "replace")) + "]"
    elif kind is int:
        value = str(reply)
    elif reply is None:
        value = "null"
    else:
        return None
    return ("{" + encode_basestring(verb) + ":" + value + "}").encode()


def render_json(verb: str, reply: RespValue, jsonp: str | None = None) -> bytes:
    """Webdis's JSON body (``json_reply``), JSONP-wrapped when ``jsonp`` is set."""
    # Fast paths for scalar replies (most requests); ``encode_basestring`` is what the
    # compact, non-ASCII-preserving encoder uses for strings, so the bytes are equal.
    value: str
    if isinstance(reply, ReplyError):
        value = "[false," + encode_basestring(str(reply)) + "]"
    elif isinstance(reply, Status):
        value = "[true," + encode_basestring(as_text(reply)) + "]"
    elif isinstance(reply, bytes) and verb.upper() != "INFO":
        value = encode_basestring(as_text(reply))
    elif isinstance(reply, int):
        value = str(reply)
    elif reply is None:
        value = "null"
    else:
        found = json_value(verb, reply)
        value = "" if found is _MISSING else _dumps(found)
    body = "{" + encode_basestring(verb) + ":" + value + "}" if value else "{}"
    if jsonp:
        body = f"{jsonp}({body});\n"
    return body.encode()
