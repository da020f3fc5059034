"""Deep merge of layers with provenance, and `*_file` secret indirection.

Layers are flattened to leaves, so merging "deeply, key by key" is setting each
leaf of a later layer over the earlier ones; lists are leaves (replaced whole).

`X_file = "/path"` in any layer, where the section has a key `X` but no key
`X_file` (e.g. `auth.jwt_secret_file`), means "X is the content of that file",
at the precedence of the layer that said it: `X` and `X_file` are one setting,
and only the winning one is read. The value is then a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from supervisor.config import schema
from supervisor.config.errors import Problem, render_value
from supervisor.config.formats import Data
from supervisor.config.layers import KeyPath, Layer, Origin
from supervisor.config.reading import read_text, warn_if_exposed

_SUFFIX = "_file"


def _indirect_target(parent: tuple[str | int, ...], key: str) -> str | None:
    """The key that `key` points at if it is a `*_file` indirection, else None."""
    if not key.endswith(_SUFFIX):
        return None
    model = schema.model_at(parent)
    base = key[: -len(_SUFFIX)]
    if model is None or key in model.model_fields or base not in model.model_fields:
        return None
    return base


def _shown_path(target: str, origin: Origin) -> str:
    # A path that itself came from the secrets directory is not echoed either.
    return f"(path from {origin.source})" if origin.secret else target


def _read_secret(layer: Layer, ref: str, target: Data, origin: Origin) -> str | None:
    if not isinstance(target, str) or not target:
        shown = None if origin.secret else render_value(target)
        layer.problems.append(
            Problem(ref, origin.source, "must be a file path", shown, secret=origin.secret)
        )
        return None
    path = Path(target)
    layer.watched.append(path)
    shown = _shown_path(target, origin)
    text = read_text(path, layer, ref, origin.source, shown)
    if text is None:
        return None
    warn_if_exposed(path, layer, shown)
    return text.strip()


def _resolve_item(layer: Layer, list_path: KeyPath, index: int, item: Data, origin: Origin) -> Data:
    if not isinstance(item, dict):
        return item
    out = dict(item)
    for key, target in item.items():
        base = _indirect_target((*list_path, index), str(key))
        if base is None:
            continue
        ref = schema.dotted((*list_path, index, key))
        del out[key]
        if base in item:
            layer.problem(ref, origin.source, f"set either {base} or {key}, not both")
            continue
        secret = _read_secret(layer, ref, target, origin)
        if secret is not None:
            out[base] = secret
    return out


def _counterpart(path: KeyPath) -> KeyPath | None:
    """For `X_file` the path of `X`, for `X` the path of `X_file` (if an indirection)."""
    parent, key = path[:-1], path[-1]
    base = _indirect_target(parent, key)
    if base is not None:
        return (*parent, base)
    if _indirect_target(parent, key + _SUFFIX) is not None:
        return (*parent, key + _SUFFIX)
    return None


def _check_same_layer(layer: Layer) -> None:
    for path, (_value, origin) in list(layer.values.items()):
        base = _indirect_target(path[:-1], path[-1])
        if base is not None and (*path[:-1], base) in layer.values:
            layer.problem(
                schema.dotted(path), origin.source, f"set either {base} or {path[-1]}, not both"
            )


def resolve_file_refs(merged: Merged) -> Layer:
    """Replace every winning `X_file` indirection by the secret it points at.

    Returns a pseudo-layer with the problems, warnings, watched paths and raw
    bytes met while reading the secret files.
    """
    files = Layer("secret files")
    for path, origin in list(merged.origins.items()):
        value = merged.get(path)
        if isinstance(value, list) and schema.model_at((*path, 0)) is not None:
            resolved = [_resolve_item(files, path, i, item, origin) for i, item in enumerate(value)]
            if resolved != value:
                merged.set(path, resolved, Origin(origin.source, True, origin.locate))
            continue
        base = _indirect_target(path[:-1], path[-1])
        if base is None:
            continue
        merged.unset(path)
        ref = schema.dotted(path)
        secret = _read_secret(files, ref, value, origin)
        if secret is not None:
            source = f"secret file {_shown_path(str(value), origin)} (via {ref}, {origin.source})"
            merged.set((*path[:-1], base), secret, Origin(source, secret=True))
    return files


@dataclass
class Merged:
    """The merged raw data and the origin of every leaf in it."""

    data: dict[str, Data] = field(default_factory=dict)
    origins: dict[KeyPath, Origin] = field(default_factory=dict)

    def set(self, path: KeyPath, value: Data, origin: Origin) -> None:
        node = self.data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                # A later layer nests below what an earlier one set as a scalar.
                child = node[part] = {}
                self.origins.pop(path[: depth + 1], None)
            node = child
        node[path[-1]] = value
        for known in [k for k in self.origins if k[: len(path)] == path and k != path]:
            del self.origins[known]
        self.origins[path] = origin

    def get(self, path: KeyPath) -> Data:
        """The value at `path`, or None."""
        node: Data = self.data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def unset(self, path: KeyPath) -> None:
        """Remove the value at `path` (and its origins), if present."""
        parent = self.get(path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        for known in [k for k in self.origins if k[: len(path)] == path]:
            del self.origins[known]

    def origin_of(self, path: tuple[str | int, ...]) -> Origin | None:
        """Origin of the leaf at `path`, or of the nearest leaf above it (a list)."""
        keys = tuple(str(p) for p in path)
        for end in range(len(keys), 0, -1):
            found = self.origins.get(keys[:end])
            if found is not None:
                return found
        return None

    def origins_below(self, path: tuple[str | int, ...]) -> list[Origin]:
        """Origins of every leaf at or below `path`, in a stable order."""
        keys = tuple(str(p) for p in path)
        return [o for k, o in sorted(self.origins.items()) if k[: len(keys)] == keys]


def merge(layers: list[Layer]) -> Merged:
    """Merge layers, lowest precedence first."""
    merged = Merged()
    for layer in layers:
        _check_same_layer(layer)
        for path, (value, origin) in layer.values.items():
            # `X` and `X_file` are one setting: the later layer's wins, whichever it uses.
            other = _counterpart(path)
            if other is not None:
                merged.unset(other)
            merged.set(path, value, origin)
    return merged
