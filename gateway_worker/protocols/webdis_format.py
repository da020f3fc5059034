"""Webdis reply formats, byte for byte as Webdis writes them (src/formats/*.c).

* ``FORMATS``: extension → (format, Content-Type), Webdis's table in ``cmd.c``.
* ``render_json``: ``{"<verb as sent>": V}`` compact; status/error ``[true|false,"msg"]``;
  HGETALL as an object; INFO as an object of its ``field:value`` lines; XRANGE,
  XREVRANGE, XCLAIM, XREAD(GROUP), XPENDING and GEORADIUS* WITH... as Webdis's objects;
  JSONP wraps it as ``cb(<json>);\\n``.
* ``render_raw``: RESP bytes (``.raw``).
* ``render_custom``: the bare value for ``.txt``/``.html``/``?type=``...; ``None`` for nil
  (the handler answers 404).
* ``render_msgpack``: MessagePack (``.msg``), old-spec raw strings as Webdis packs them.

Deliberate differences from Webdis (its behaviour there is a C-string artefact):

* Invalid UTF-8 in a JSON string becomes U+FFFD (Webdis drops the value, answering ``{}``);
  a NUL byte is kept as ``\\u0000`` (Webdis truncates the string there).
* INFO: comment (``# Server``) and blank lines are skipped, each ``field:value`` line is
  one member (Webdis glues comment lines into the following key).
* ``.raw`` arrays: nil and nested elements are encoded as RESP (Webdis leaves them out
  while keeping the element count, which no RESP reader can parse).
* Object member order is Redis's reply order (Webdis's old jansson uses hash order).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

import msgpack

from gateway_worker.redis.values import NilArray, ReplyError, RespValue, Status

#: extension → (format, Content-Type); exactly Webdis's table (cmd_select_format).
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("json", "application/json"),
    "raw": ("raw", "binary/octet-stream"),
    "msg": ("msgpack", "application/x-msgpack"),
    "bin": ("custom", "binary/octet-stream"),
    "txt": ("custom", "text/plain"),
    "html": ("custom", "text/html"),
    "xhtml": ("custom", "application/xhtml+xml"),
    "xml": ("custom", "text/xml"),
    "png": ("custom", "image/png"),
    "jpg": ("custom", "image/jpeg"),
    "jpeg": ("custom", "image/jpeg"),
    "js": ("json", "application/javascript"),
    "css": ("custom", "text/css"),
}
DEFAULT_FORMAT = ("json", "application/json")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

Json = Any


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _is_bulk(value: RespValue) -> bool:
    """A bulk string (Webdis's REDIS_REPLY_STRING), not a status."""
    return isinstance(value, bytes) and not isinstance(value, Status)


def _expand_array(items: list[RespValue]) -> list[Json]:
    out: list[Json] = []
    for item in items:
        if isinstance(item, bytes):  # bulk and status alike
            out.append(_text(item))
        elif isinstance(item, int):
            out.append(item)
        elif isinstance(item, list):
            out.append(_expand_array(item))
        else:  # nil, and errors nested in arrays
            out.append(None)
    return out


def _keyvalue(items: list[RespValue]) -> dict[str, Json] | None:
    if len(items) % 2:
        return None
    obj: dict[str, Json] = {}
    for key, value in zip(items[::2], items[1::2], strict=True):
        if not _is_bulk(key):
            return None
        assert isinstance(key, bytes)
        if value is None or isinstance(value, NilArray):
            obj[_text(key)] = None
        elif _is_bulk(value):
            assert isinstance(value, bytes)
            obj[_text(key)] = _text(value)
        elif isinstance(value, int):
            obj[_text(key)] = value
        elif isinstance(value, list):
            obj[_text(key)] = _expand_array(value)
        else:
            return None
    return obj


def parse_info(text: bytes) -> dict[str, str]:
    """INFO's ``field:value`` lines as a dict (comments and blank lines skipped)."""
    info: dict[str, str] = {}
    for line in _text(text).split("\r\n"):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            info[key] = value
    return info


def _single_stream(items: list[RespValue]) -> list[Json]:
    out: list[Json] = []
    for entry in items:
        if not isinstance(entry, list) or len(entry) < 2:
            continue
        entry_id, fields = entry[0], entry[1]
        if not _is_bulk(entry_id) or not entry_id:
            continue
        if not isinstance(fields, list) or len(fields) < 2:
            continue
        assert isinstance(entry_id, bytes)
        out.append({"id": _text(entry_id), "msg": _keyvalue(fields)})
    return out


def _xread(items: list[RespValue]) -> dict[str, Json] | None:
    if not items:
        return None
    obj: dict[str, Json] = {}
    for entry in items:
        if not isinstance(entry, list) or len(entry) < 2:
            continue
        stream, messages = entry[0], entry[1]
        if not _is_bulk(stream) or not stream or not isinstance(messages, list):
            continue
        assert isinstance(stream, bytes)
        obj[_text(stream)] = _single_stream(messages)
    return obj


def _xpending(items: list[RespValue]) -> Json:
    if len(items) >= 4 and isinstance(items[0], int) and not isinstance(items[0], bool):
        summary: dict[str, Json] = {"msgs": items[0]}
        for name, value in (("idmin", items[1]), ("idmax", items[2])):
            if _is_bulk(value):
                assert isinstance(value, bytes)
                summary[name] = _text(value)
        consumers = items[3]
        if not isinstance(consumers, list):
            return summary
        owners: dict[str, Json] = {}
        for entry in consumers:
            if not isinstance(entry, list) or len(entry) < 2 or not _is_bulk(entry[0]):
                continue
            owner, count = entry[0], entry[1]
            assert isinstance(owner, bytes)
            if _is_bulk(count):
                assert isinstance(count, bytes)
                owners[_text(owner)] = _text(count)
            elif isinstance(count, int):
                owners[_text(owner)] = count
        summary["msgsperconsumer"] = owners
        return summary
    out: list[Json] = []
    for entry in items:
        if not isinstance(entry, list) or len(entry) < 4:
            continue
        obj: dict[str, Json] = {}
        for index, name, want_int in (
            (0, "id", False), (1, "owner", False), (2, "elapsedtime", True),
            (3, "deliveries", True),
        ):
            value = entry[index]
            if want_int and isinstance(value, int):
                obj[name] = value
            elif not want_int and _is_bulk(value):
                assert isinstance(value, bytes)
                obj[name] = _text(value)
        out.append(obj)
    return out


def _georadius(items: list[RespValue]) -> list[Json]:
    out: list[Json] = []
    for entry in items:
        if not isinstance(entry, list) or not entry:
            continue
        obj: dict[str, Json] = {}
        if isinstance(entry[0], bytes):
            obj["name"] = _text(entry[0])
        for value in entry[1:]:
            if isinstance(value, int):
                obj["hash"] = value
            elif _is_bulk(value):
                assert isinstance(value, bytes)
                obj["dist"] = _text(value)
            elif (
                isinstance(value, list)
                and len(value) == 2
                and all(_is_bulk(v) for v in value)
            ):
                obj["coords"] = [_text(v) for v in value if isinstance(v, bytes)]
        out.append(obj)
    return out


_MISSING = object()


def json_value(verb: str, reply: RespValue) -> Any:
    """The JSON value Webdis puts under the verb; ``_MISSING`` where Webdis omits it."""
    upper = verb.upper()
    if isinstance(reply, ReplyError):
        return [False, str(reply)]
    if isinstance(reply, Status):
        return [True, _text(reply)]
    if isinstance(reply, bytes):
        return parse_info(reply) if upper == "INFO" else _text(reply)
    if isinstance(reply, int):
        return reply
    if isinstance(reply, list):
        special: Any = _MISSING
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
        value = "[true," + encode_basestring(_text(reply)) + "]"
    elif isinstance(reply, bytes) and verb.upper() != "INFO":
        value = encode_basestring(_text(reply))
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


def render_raw(reply: RespValue) -> bytes:
    """RESP bytes of ``reply`` (``raw_wrap``: integers inside arrays as bulk strings)."""
    if isinstance(reply, ReplyError):
        return b"-" + str(reply).encode() + b"\r\n"
    if isinstance(reply, Status):
        return b"+" + bytes(reply) + b"\r\n"
    if isinstance(reply, bytes):
        return b"$%d\r\n%b\r\n" % (len(reply), reply)
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, list):
        parts = [b"*%d\r\n" % len(reply)]
        for item in reply:
            if isinstance(item, int) and not isinstance(item, bool):
                text = b"%d" % item
                parts.append(b"$%d\r\n%b\r\n" % (len(text), text))
            elif isinstance(item, bytes) and not isinstance(item, Status):
                parts.append(b"$%d\r\n%b\r\n" % (len(item), item))
            else:
                parts.append(render_raw(item))
        return b"".join(parts)
    return b"$-1\r\n"


def render_custom(reply: RespValue, separator: bytes | None = None) -> bytes | None:
    """The bare value (``custom_type_reply``); None for nil (404)."""
    if reply is None or isinstance(reply, NilArray):
        return None
    if isinstance(reply, ReplyError):
        return b"-" + str(reply).encode()
    if isinstance(reply, Status):
        return b"+" + bytes(reply)
    if isinstance(reply, bytes):
        return bytes(reply)
    if isinstance(reply, int):
        return b"%d" % reply
    out = bytearray()
    for index, item in enumerate(reply):
        if _is_bulk(item):
            assert isinstance(item, bytes)
            if separator and index != 0:
                out += separator
            out += item
    return bytes(out)


def _msgpack_value(verb: bytes, reply: RespValue) -> Any:
    upper = verb.upper()
    if isinstance(reply, ReplyError):
        return [False, str(reply).encode()]
    if isinstance(reply, Status):
        return [True, bytes(reply)]
    if isinstance(reply, bytes):
        if upper == b"INFO":
            return {k.encode(): v.encode() for k, v in parse_info(reply).items()}
        return bytes(reply)
    if isinstance(reply, int):
        return reply
    if isinstance(reply, list):
        if (
            upper == b"HGETALL"
            and len(reply) % 2 == 0
            and all(_is_bulk(v) for v in reply)
        ):
            pairs = [bytes(v) for v in reply if isinstance(v, bytes)]
            return dict(zip(pairs[::2], pairs[1::2], strict=True))
        return [
            bytes(v) if _is_bulk(v) and isinstance(v, bytes)
            else v if isinstance(v, int)
            else None
            for v in reply
        ]
    return None


def render_msgpack(verb: bytes, reply: RespValue) -> bytes:
    """Webdis's MessagePack body: a one-entry map ``{verb: value}`` (verb as sent)."""
    value = {bytes(verb): _msgpack_value(verb, reply)}
    packed = msgpack.packb(value, use_bin_type=False)
    assert isinstance(packed, bytes)
    return packed
