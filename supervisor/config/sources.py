"""One small source class per configuration layer (DESIGN.md "Configuration").

Each source reads its inputs and returns a `Layer`: the leaf values it sets
(flattened to key paths), where each came from, the problems met while reading
(never raised: every problem is reported at once), warnings, the paths worth
watching, and the raw bytes read (for `fingerprint_inputs`).

Text sources (env vars, files per key, --set) give strings; pydantic coerces them
("9000" -> 9000, "true" -> True). A text value starting with `[` or `{` is JSON
(lists and tables), `"..."` is a JSON string, `null` means unset. A value for a
secret field is always taken verbatim.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from supervisor.config import schema
from supervisor.config.errors import Problem, render_value
from supervisor.config.formats import (
    MAX_DEPTH,
    Data,
    FormatError,
    depth,
    format_of,
    parse_document,
)
from supervisor.config.layers import KeyPath, Layer, Origin, flatten
from supervisor.config.reading import read_text, warn_if_exposed

# Environment variables that choose the inputs; they are not configuration keys.
META_ENV_VARS = frozenset(
    {
        "REDIS_GATEWAY_CONFIG",
        "REDIS_GATEWAY_PROFILE",
        "REDIS_GATEWAY_CONFIGMAP_DIR",
        "REDIS_GATEWAY_SECRETS_DIR",
    }
)

DOCUMENT_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def parse_text(text: str, path: KeyPath) -> Data:
    """A text value as described in the module docstring; ValueError if bad JSON."""
    if len(path) > MAX_DEPTH:
        raise ValueError(f"key has {len(path)} parts (at most {MAX_DEPTH})")
    if schema.is_secret_string(path):
        return text.strip()
    stripped = text.strip()
    if stripped[:1] in ("[", "{") or (len(stripped) >= 2 and stripped[0] == stripped[-1] == '"'):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not valid JSON ({exc.msg} at column {exc.colno}); lists and "
                "tables from text sources must be JSON"
            ) from exc
        except RecursionError:
            raise ValueError(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
        if len(path) + depth(value) > MAX_DEPTH:
            raise ValueError(f"nested {len(path) + depth(value)} levels deep (at most {MAX_DEPTH})")
        return value
    if stripped == "null":
        return None
    return stripped


class FileSource:
    """A whole config document: the main file or its profile overlay.

    A file that holds no setting at all is refused: it is what a file looks like in
    the middle of a non-atomic write (`cp`, `>`, many editors truncate first), and
    applying it would mean "every default" (issue 14).
    """

    def __init__(
        self, path: Path, label: str = "file", text: str | None = None, fmt: str | None = None
    ) -> None:
        self.path = path
        self.label = label
        #: The document's content when it does not come from ``path`` (a candidate
        #: planned as if it replaced the file: ``POST /admin/config/plan``), and its format.
        self.text = text
        self.fmt = fmt

    def load(self) -> Layer:
        layer = Layer(self.label)
        if self.text is None:
            layer.watched.append(self.path)
        load_document(
            self.path,
            f"{self.label} {self.path}" if self.text is None else f"candidate {self.path}",
            layer,
            secret=False,
            require_settings=True,
            text=self.text,
            fmt=self.fmt,
        )
        return layer


def load_document(
    path: Path,
    source: str,
    layer: Layer,
    *,
    secret: bool,
    require_settings: bool = False,
    text: str | None = None,
    fmt: str | None = None,
) -> None:
    """Parse a TOML/YAML/JSON document into `layer`, one origin (with line) per leaf
    (``text``: the document's content, instead of reading ``path``)."""
    if text is None:
        text = read_text(path, layer, str(path), source)
    else:
        layer.raw.append(text.encode(errors="surrogateescape"))
    if text is None:
        return
    try:
        doc = parse_document(text, fmt or format_of(path))
    except FormatError as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        layer.problem(str(path), where, exc.message)
        return
    if require_settings and not any(
        not (isinstance(v, Mapping) and not v) for _, v in flatten(doc.data)
    ):
        what = "empty" if not text.strip() else "without a single setting"
        layer.problem(
            str(path),
            source,
            f"config file is {what}; a file being written (cp, >, an editor) "
            "is never applied, and an intentionally empty file must be "
            "removed instead",
        )
        return

    def locate(path: Sequence[str | int]) -> str:
        line = doc.line_of(path)
        return f"{source}:{line}" if line else source

    for key_path, value in flatten(doc.data):
        layer.values[key_path] = (value, Origin(locate(key_path), secret, locate))


class _DirectorySource:
    """A directory with one file per key, mounted the way Kubernetes mounts volumes.

    Kubernetes puts the data in a `..<timestamp>` directory, points `..data` at it
    and makes each key a symlink `key -> ..data/key`: files are read through their
    symlinks and dot-entries are skipped. A key is named `server.port` or
    `server__port`; a key ending in .toml/.yaml/.yml/.json holds a whole document
    (read first, so single-key files override it).
    """

    kind = "configmap"
    secret = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> Layer:
        layer = Layer(f"{self.kind} dir")
        layer.watched.append(self.directory)
        where = f"{self.kind} dir {self.directory}"
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            layer.problem(str(self.directory), where, "directory not found")
            return layer
        except NotADirectoryError:
            layer.problem(str(self.directory), where, "not a directory")
            return layer
        except (OSError, ValueError) as exc:
            layer.problem(
                str(self.directory), where, f"cannot list: {getattr(exc, 'strerror', None) or exc}"
            )
            return layer
        # Which `..<timestamp>` directory is live is part of the content (fingerprint).
        try:
            layer.raw.append(os.readlink(self.directory / "..data").encode())
        except OSError:
            pass  # not a Kubernetes mount (or swapped right now: the next check sees it)
        visible = [n for n in names if not n.startswith(".")]
        layer.raw.append("\0".join(visible).encode(errors="surrogateescape"))
        documents = [n for n in visible if n.lower().endswith(DOCUMENT_SUFFIXES)]
        for name in documents + [n for n in visible if n not in documents]:
            path = self.directory / name
            if path.is_dir():
                layer.warnings.append(f"{where}: ignored sub-directory {name!r}")
                continue
            if self.secret:
                warn_if_exposed(path, layer)
            if name in documents:
                load_document(path, f"{self.kind} {path}", layer, secret=self.secret)
            else:
                self._load_key(name, path, layer)
        return layer

    def _load_key(self, name: str, path: Path, layer: Layer) -> None:
        source = f"{self.kind} {path}" if not self.secret else f"secret file {path}"
        parts = tuple(name.lower().replace("__", ".").split("."))
        if any(not p for p in parts):
            layer.problem(
                name, source, "malformed key name (expected e.g. server.port or server__port)"
            )
            return
        text = read_text(path, layer, ".".join(parts), source)
        if text is None:
            return
        try:
            value = parse_text(text, parts)
        except ValueError as exc:
            layer.problems.append(Problem(".".join(parts), source, str(exc), secret=self.secret))
            return
        layer.values[parts] = (value, Origin(source, self.secret))


class ConfigMapSource(_DirectorySource):
    """A mounted Kubernetes ConfigMap."""


class SecretsDirSource(_DirectorySource):
    """A mounted Kubernetes Secret: values are secrets, never shown."""

    kind = "secrets"
    secret = True


class EnvSource:
    """`REDIS_GATEWAY_SECTION__KEY=value`: `__` between nesting levels."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def load(self) -> Layer:
        layer = Layer("env")
        for name in sorted(self.env):
            if not name.startswith(schema.ENV_PREFIX) or name in META_ENV_VARS:
                continue
            value = self.env[name]
            layer.raw.append(f"{name}={value}".encode(errors="surrogateescape"))
            source = f"env {name}"
            parts = tuple(name[len(schema.ENV_PREFIX) :].lower().split(schema.ENV_NESTING))
            if any(not p for p in parts):
                layer.problem(
                    name,
                    source,
                    "malformed variable name (use __ between "
                    "levels, e.g. REDIS_GATEWAY_SERVER__PORT)",
                )
                continue
            try:
                layer.values[parts] = (parse_text(value, parts), Origin(source))
            except ValueError as exc:
                shown = render_value(value) if schema.showable(parts) else None
                layer.problems.append(Problem(".".join(parts), source, str(exc), shown))
        return layer


class OverridesSource:
    """`--set a.b=c` from the command line: the highest precedence."""

    def __init__(self, overrides: tuple[str, ...]) -> None:
        self.overrides = overrides

    def load(self) -> Layer:
        layer = Layer("--set")
        for item in self.overrides:
            layer.raw.append(item.encode(errors="surrogateescape"))
            key, sep, value = item.partition("=")
            key = key.strip()
            parts = tuple(key.split("."))
            if not sep or any(not p for p in parts):
                layer.problem(
                    key or item,
                    f"--set {key}",
                    "expected --set KEY=VALUE with a dotted key, e.g. --set server.port=9000",
                )
                continue
            source = f"--set {key}"
            try:
                layer.values[parts] = (parse_text(value, parts), Origin(source))
            except ValueError as exc:
                shown = render_value(value) if schema.showable(parts) else None
                layer.problems.append(Problem(".".join(parts), source, str(exc), shown))
        return layer
