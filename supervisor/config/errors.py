"""Configuration problems and the error that carries all of them.

A `Problem` is one thing wrong with the inputs, rendered on one line as

    server.port: Input should be less than or equal to 65535 (got 70000; from file gw.toml:3)

Values that are secrets (SecretStr fields, anything read from the secrets directory
or through a ``*_file`` key) are never rendered: ``value`` is None for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway_worker.errors import GatewayError

SECRET_MASK = "**********"  # noqa: S105 - the mask shown instead of a secret

# Rendered values are cut so one problem stays one readable line.
_MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class Problem:
    """One configuration problem: key path, source, rule and (unless secret) value."""

    key: str
    source: str
    rule: str
    value: str | None = None
    secret: bool = False

    def __str__(self) -> str:
        details = []
        if self.secret:
            details.append("value hidden: secret")
        elif self.value is not None:
            details.append(f"got {self.value}")
        details.append(f"from {self.source}")
        return _one_line(f"{self.key}: {self.rule} ({'; '.join(details)})")


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

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems: list[Problem | str] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
