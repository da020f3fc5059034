"""Questions about the schema asked by path: is it a secret, which model is there.

Paths are tuples of keys (and list indexes, as in pydantic error locations), e.g.
``("auth", "api_keys", 0, "key")``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from functools import cache
from typing import Any, TypeAlias

from pydantic import BaseModel, SecretStr

from gateway_worker.config import Config

ENV_PREFIX = "REDIS_GATEWAY_"
ENV_NESTING = "__"

Path = tuple[str | int, ...]

#: A type annotation read off the pydantic models (``Annotated[...]``, unions, ``list[...]``,
#: model classes): typing gives them no static type of their own, so they are objects
#: narrowed with isinstance/get_origin where used.
Annotation: TypeAlias = object


def members(annotation: Annotation) -> list[Annotation]:
    """The concrete types an annotation can hold (Optional, Annotated, unions unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Annotation] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(members(arg))
        return out
    return [annotation]


def item_type(annotation: Annotation) -> Annotation | None:
    """The item type if `annotation` is a list type, else None."""
    for member in members(annotation):
        if typing.get_origin(member) in (list, tuple, set, frozenset):
            args = typing.get_args(member)
            return args[0] if args else Any
    return None


def model_in(annotation: Annotation) -> type[BaseModel] | None:
    for member in members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _as_any(annotation: object) -> Annotation:
    return annotation


@cache
def contains_secret(annotation: Annotation) -> bool:
    for member in members(annotation):
        if member is SecretStr:
            return True
        item = item_type(member)
        if item is not None and contains_secret(item):
            return True
        if (
            isinstance(member, type)
            and issubclass(member, BaseModel)
            and any(contains_secret(_as_any(f.annotation)) for f in member.model_fields.values())
        ):
            return True
    return False


def annotation_at(path: Sequence[str | int], root: type[BaseModel] = Config) -> Annotation | None:
    """The type annotation of the value at `path`, or None if the schema has no such key."""
    current: Annotation = root
    for part in path:
        model = model_in(current)
        item = item_type(current)
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit() and item):
            if item is None:
                return None
            current = item
        elif model is not None and isinstance(part, str) and part in model.model_fields:
            current = model.model_fields[part].annotation
        else:
            return None
    return current


def model_at(path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class found at `path` (a section, or a list item), or None."""
    annotation = annotation_at(path)
    return None if annotation is None else model_in(annotation)


def is_secret(path: Sequence[str | int]) -> bool:
    """True if the value at `path` is, or contains, a secret (SecretStr)."""
    annotation = annotation_at(path)
    return annotation is not None and contains_secret(annotation)


def showable(path: Sequence[str | int]) -> bool:
    """May a value given for `path` appear in a message? Only when the key is known and
    holds no secret: a misspelt key (`auth.jwt_secrett`) most likely holds a secret too."""
    annotation = annotation_at(path)
    return annotation is not None and not contains_secret(annotation)


def is_secret_string(path: Sequence[str | int]) -> bool:
    """True if the value at `path` is itself a SecretStr (taken verbatim from text)."""
    annotation = annotation_at(path)
    return annotation is not None and any(m is SecretStr for m in members(annotation))


def env_var_name(dotted: str) -> str:
    """`server.cors.enabled` -> `REDIS_GATEWAY_SERVER__CORS__ENABLED`."""
    return ENV_PREFIX + dotted.replace(".", ENV_NESTING).upper()


def dotted(path: Sequence[str | int]) -> str:
    """`("auth", "api_keys", 0, "key")` -> `auth.api_keys.0.key`."""
    return ".".join(str(p) for p in path) if path else "(root)"
