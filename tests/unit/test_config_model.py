"""The schema itself: defaults, constraints, cross-field rules, secrets never shown."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway_worker.config import Config, dump_redacted, dump_with_secrets

CANARY = "canary-secret-3f9a1c77d2e4"


def test_defaults_are_valid() -> None:
    c = Config()
    assert c.server.port == 8080
    assert "FLUSHALL" in c.policy.denied_commands


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ValidationError) as e:
        Config.model_validate({"server": {"prot": 1}})
    assert e.value.errors()[0]["loc"] == ("server", "prot")


def test_metrics_port_must_differ() -> None:
    data = {"server": {"port": 9000}, "observability": {"metrics": {"port": 9000}}}
    with pytest.raises(ValidationError, match=r"must differ from server\.port"):
        Config.model_validate(data)


def test_secret_never_in_repr_errors_or_redacted_dump() -> None:
    c = Config.model_validate({"auth": {"jwt_secret": CANARY}})
    assert CANARY not in repr(c)
    assert CANARY not in str(dump_redacted(c))
    assert dump_with_secrets(c)["auth"]["jwt_secret"] == CANARY
    with pytest.raises(ValidationError) as e:
        Config.model_validate({"auth": {"api_keys": [{"name": "a", "key": CANARY[:8]}]}})
    assert CANARY[:8] not in str(e.value)


def test_stream_limits() -> None:
    server = Config().server
    assert server.max_streams is None and server.stream_drain_seconds is None
    assert Config().api.webdis_websockets is False
    with pytest.raises(ValidationError, match=r"max_streams \(100\) must be less than"):
        Config.model_validate({"server": {"max_connections": 100, "max_streams": 100}})
    with pytest.raises(ValidationError, match=r"webdis_websockets needs api\.webdis_enabled"):
        Config.model_validate({"api": {"webdis_enabled": False, "webdis_websockets": True}})
