"""Configuration problems and the error that carries all of them.

A `Problem` is one thing wrong with the inputs, rendered on one line as

    server.port: Input should be less than or equal to 65535 (got 70000; from file gw.toml:3)

Values that are secrets (SecretStr fields, anything read from the secrets directory
or through a ``*_file`` key) are never rendered: ``value`` is None for them.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway_worker.config import SECRET_MASK, redact_url
from gateway_worker.errors import GatewayError

__all__ = ["SECRET_MASK", "ConfigError", "Problem", "redact_url", "render_value"]


# Rendered values are cut so one problem stays one readable line.
_MAX_VALUE_CHARS = 80


class Problem(str):
    """One configuration problem: key path, source, rule and (unless secret) value.

    It *is* its one-line rendering (a `str`), so callers can log it, join it or
    serialise it to JSON as text, and still read the parts as attributes.
    """

    key: str
    source: str
    rule: str
    value: str | None
    secret: bool

    def __new__(
        cls, key: str, source: str, rule: str, value: str | None = None, secret: bool = False
    ) -> Problem:
        details = []
        if secret:
            details.append("value hidden: secret")
        elif value is not None:
            details.append(f"got {value}")
        details.append(f"from {_bounded(source)}")
        self = super().__new__(cls, _one_line(f"{_bounded(key)}: {rule} ({'; '.join(details)})"))
        self.key, self.source, self.rule = key, source, rule
        self.value = None if secret else value
        self.secret = secret
        return self

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"

    def __reduce__(self) -> tuple[type[Problem], tuple[str, str, str, str | None, bool]]:
        return (Problem, (self.key, self.source, self.rule, self.value, self.secret))


def _one_line(text: str) -> str:
    # Keys and sources can come from --set or file names, which may hold newlines.
    return text.replace("\n", "\\n").replace("\r", "\\r")


#: Longest key or source shown in a problem (a hostile 1,500-part key is cut).
_MAX_NAME_CHARS = 160


def _bounded(name: str) -> str:
    if len(name) <= _MAX_NAME_CHARS:
        return name
    return f"{name[: _MAX_NAME_CHARS - 30]}... ({len(name)} characters)"


def render_value(value: object) -> str:
    """A short, single-line representation of an offending value (URL passwords masked)."""
    text = redact_url(repr(value))
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


class ConfigError(GatewayError):
    """Invalid or unreadable configuration; ``problems`` lists every one found.

    ``str(err)`` lists them all, one per line. No problem ever renders a secret.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        # Each item is a `Problem` (a str with .key/.source/.rule/.value) when raised here.
        self.problems: list[str] = list(problems)
        #: Set by ``load_config``: the fingerprint of the inputs that were read.
        self.inputs_fingerprint: str | None = None
        super().__init__("\n".join(str(p) for p in self.problems))
