"""Webdis reply formats, byte for byte as Webdis writes them (src/formats/*.c): the
table of extensions, the raw and bare-value formats, and how they read a reply.

* ``FORMATS``: extension → (format, Content-Type), Webdis's table in ``cmd.c``; the
  formats are ``json`` (``json_format``), ``msgpack`` (``msgpack_format``), ``raw`` and
  ``custom`` (here).
* ``render_raw``: RESP bytes (``.raw``).
* ``render_custom``: the bare value for ``.txt``/``.html``/``?type=``...; ``None`` for nil
  (the handler answers 404).
* ``text``, ``is_bulk``, ``parse_info``: reading a reply the way every format does.

Deliberate difference from Webdis (its behaviour there is a C-string artefact):
``.raw`` arrays encode nil and nested elements as RESP (Webdis leaves them out while
keeping the element count, which no RESP reader can parse).
"""

from __future__ import annotations

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


def as_text(value: bytes) -> str:
    """A string reply as text (invalid UTF-8 becomes U+FFFD)."""
    return value.decode("utf-8", "replace")


def is_bulk(value: RespValue) -> bool:
    """A bulk string (Webdis's REDIS_REPLY_STRING), not a status."""
    return isinstance(value, bytes) and not isinstance(value, Status)


def parse_info(text: bytes) -> dict[str, str]:
    """INFO's ``field:value`` lines as a dict (comments and blank lines skipped)."""
    info: dict[str, str] = {}
    for line in as_text(text).split("\r\n"):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            info[key] = value
    return info


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
        if is_bulk(item):
            assert isinstance(item, bytes)
            if separator and index != 0:
                out += separator
            out += item
    return bytes(out)
