"""The two kinds of object mirrored, and what is taken from their JSON.

This module is the JSON edge: objects arrive as ``dict[str, Any]`` (``Any`` because
that is what ``json.loads`` gives) and leave as typed values: a resourceVersion (a
string, opaque: compared for equality only, never ordered) and a ``Payload``, the
file name -> bytes a volume mount of the object would hold.

- ConfigMap: ``data`` (UTF-8 strings) and ``binaryData`` (base64).
- Secret: ``data`` (base64; ``stringData`` is write-only and never returned).

A key that is not a safe file name is left out (and reported): it could otherwise
write outside the directory or collide with the mirror's own ``..data`` entries.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.kubernetes.errors import ProtocolError

#: A decoded JSON object. ``Any``: the JSON edge (see the module docstring).
JsonObject = dict[str, Any]
#: File name -> content, as a volume mount of the object holds it.
Payload = dict[str, bytes]

# (field, base64-encoded?) per kind: a Secret's data, a ConfigMap's data and binaryData.
_FIELDS = {True: (("data", True),), False: (("data", False), ("binaryData", True))}
# A file name is at most 255 bytes on every filesystem we run on.
_MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class ObjectKind:
    """A kind of object: its API path segment, its mirror directory and whether its
    values are secret."""

    kind: str
    plural: str
    directory: str
    secret: bool


CONFIGMAP = ObjectKind("ConfigMap", "configmaps", "configmap", secret=False)
SECRET = ObjectKind("Secret", "secrets", "secrets", secret=True)


@dataclass(frozen=True)
class Extracted:
    """The payload of an object and the keys left out of it (unsafe names)."""

    payload: Payload
    skipped: tuple[str, ...] = ()


def is_safe_key(name: str) -> bool:
    """Can ``name`` be a file directly inside the mirror directory?"""
    return (
        bool(name)
        and "/" not in name
        and "\0" not in name
        and name not in (".", "..")
        and not name.startswith("..")
        and len(name.encode("utf-8", "surrogateescape")) <= _MAX_NAME_BYTES
    )


def resource_version(obj: Mapping[str, Any], what: str) -> str:
    """``metadata.resourceVersion`` of an object or list; ProtocolError if absent."""
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    if not isinstance(version, str) or not version:
        raise ProtocolError(f"{what}: no metadata.resourceVersion")
    return version


def object_name(obj: Mapping[str, Any]) -> str | None:
    """``metadata.name``, if there is one."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else None


def extract(kind: ObjectKind, obj: Mapping[str, Any], what: str) -> Extracted:
    """The files a volume mount of ``obj`` would hold."""
    payload: Payload = {}
    skipped: list[str] = []
    for field, encoded in _FIELDS[kind.secret]:
        mapping = obj.get(field)
        if mapping is None:
            continue  # the API leaves empty maps out
        if not isinstance(mapping, Mapping):
            raise ProtocolError(f"{what}: {field} is not an object")
        for key, value in mapping.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ProtocolError(
                    f"{what}: {field} holds a value that is not a string"
                    + (f" (key {key!r})" if isinstance(key, str) else "")
                )
            if not is_safe_key(key):
                skipped.append(key)
                continue
            content = (
                _decode(value, f"{what}: {field} key {key!r}")
                if encoded
                else (value.encode("utf-8"))
            )
            payload.setdefault(key, content)  # the API refuses a key in both maps
    return Extracted(payload, tuple(skipped))


def _decode(value: str, what: str) -> bytes:
    decoded: bytes | None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is None:
        # Raised here, outside the except block: the decoder's exception is not kept.
        raise ProtocolError(f"{what} is not valid base64")
    return decoded
