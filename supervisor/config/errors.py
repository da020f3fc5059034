"""Configuration problems and the error that carries all of them.

A `Problem` is one thing wrong with the inputs, rendered on one line as

    server.port: Input should be less than or equal to 65535 (got 70000; from file gw.toml:3)

Values that are secrets (SecretStr fields, anything read from the secrets directory
or through a ``*_file`` key) are never rendered: ``value`` is None for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway_worker.errors import GatewayError

SECRET_MASK = "**********"  # noqa: S105 - the mask shown instead of a secret

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

    def __new__(cls, key: str, source: str, rule: str, value: str | None = None,
                secret: bool = False) -> Problem:
        details = []
        if secret:
            details.append("value hidden: secret")
        elif value is not None:
            details.append(f"got {value}")
        details.append(f"from {source}")
        self = super().__new__(cls, _one_line(f"{key}: {rule} ({'; '.join(details)})"))
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


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")


def redact_url(text: str) -> str:
    """`redis://user:pw@host` -> `redis://user:**********@host`."""
    return _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}@", text)


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
