"""Webdis's MessagePack format (``.msg``): old-spec raw strings, as Webdis packs them."""

from __future__ import annotations

from typing import TypeAlias

import msgpack

from gateway_worker.protocols.webdis.formats import is_bulk, parse_info
from gateway_worker.redis.values import ReplyError, RespValue, Status

#: What ``msgpack.packb`` is given for one reply.
MsgpackValue: TypeAlias = "bool | int | bytes | list[MsgpackValue] | dict[bytes, bytes] | None"


def _msgpack_value(verb: bytes, reply: RespValue) -> MsgpackValue:
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
        if upper == b"HGETALL" and len(reply) % 2 == 0 and all(is_bulk(v) for v in reply):
            pairs = [bytes(v) for v in reply if isinstance(v, bytes)]
            return dict(zip(pairs[::2], pairs[1::2], strict=True))
        return [
            bytes(v) if is_bulk(v) and isinstance(v, bytes) else v if isinstance(v, int) else None
            for v in reply
        ]
    return None


def render_msgpack(verb: bytes, reply: RespValue) -> bytes:
    """Webdis's MessagePack body: a one-entry map ``{verb: value}`` (verb as sent)."""
    value = {bytes(verb): _msgpack_value(verb, reply)}
    packed = msgpack.packb(value, use_bin_type=False)
    assert isinstance(packed, bytes)
    return packed
