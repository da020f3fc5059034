"""A config as plain data: with secrets (the worker pipe only), redacted (everything
shown), and its fingerprint (`config_hash`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Any, TypeAlias

from pydantic import BaseModel, SecretStr

from gateway_worker.config.model import Config

#: A config as plain data (what ``json.dumps`` takes): dicts, lists, str, int, float,
#: bool, None, at any depth; untyped as json's own values are.
Plain: TypeAlias = Any


def dump_with_secrets(config: Config) -> dict[str, Plain]:
    """Plain dict with secrets revealed, for the supervisor→worker pipe only."""

    def reveal(value: Plain) -> Plain:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, BaseModel):
            return {k: reveal(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, list):
            return [reveal(v) for v in value]
        return value

    result = reveal(config)
    assert isinstance(result, dict)
    return result


_PROCESS_KEY = secrets.token_bytes(32)


def config_hash(config: Config, secret_key: bytes | None = None) -> str:
    """The config's fingerprint: SHA-256 of its canonical form, stable across key order.
    The one definition, for reloads, status, metrics, backups and admin.

    Each secret enters as HMAC-SHA256(secret_key, secret), so a secret cannot be
    recovered from a hash (not even a weak one by trying candidates) and rotating it
    still changes the hash. The supervisor passes the key of its state directory;
    without one (a CLI that cannot read it, a worker alone) a random key of this
    process is used: such a hash is only comparable within the process.
    """
    key = _PROCESS_KEY if secret_key is None else secret_key

    def canon(value: Plain) -> Plain:
        if isinstance(value, SecretStr):
            digest = hmac.new(key, value.get_secret_value().encode(), "sha256")
            return f"<secret: {digest.hexdigest()}>"
        if isinstance(value, BaseModel):
            return {k: canon(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    canonical = json.dumps(canon(config), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: What a secret is shown as, everywhere.
SECRET_MASK = "**********"  # noqa: S105 - the mask, not a secret

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|pass|pwd)=)[^&#\s]*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """`redis://user:pw@host` -> `redis://user:**********@host` (also `?password=`)."""
    text = _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}@", text)
    return _QUERY_PASSWORD.sub(rf"\g<1>{SECRET_MASK}", text)


def dump_redacted(config: Config) -> dict[str, Plain]:
    """Plain JSON-able dict with every secret replaced by the mask (or None if unset),
    and the password inside any URL (redis.url, ...) masked too."""

    def redact(value: Plain) -> Plain:
        if isinstance(value, str):
            return redact_url(value)
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    result = redact(config.model_dump(mode="json"))
    assert isinstance(result, dict)
    return result
