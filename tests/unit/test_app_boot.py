"""App start-up: a worker that cannot reach Redis refuses to boot with a clear error."""

from __future__ import annotations

import asyncio

import pytest

from gateway_worker.app import BootError, build_app
from gateway_worker.config import Config
from tests.helpers import free_port


def test_boot_error_when_redis_does_not_answer() -> None:
    port = free_port()
    config = Config.model_validate(
        {
            "redis": {
                "url": f"redis://127.0.0.1:{port}",
                "max_retries": 0,
                "connection_timeout_seconds": 1.0,
            }
        }
    )
    app = build_app(config)
    with pytest.raises(BootError, match=f"Redis did not answer PING.*127.0.0.1:{port}"):
        asyncio.run(app.startup())


def test_boot_error_names_wrong_password(redis_url: str) -> None:
    config = Config.model_validate(
        {"redis": {"url": redis_url, "default_password": "not-the-password-123"}}
    )
    app = build_app(config)
    with pytest.raises(BootError, match="refused AUTH") as info:
        asyncio.run(app.startup())
    assert "not-the-password-123" not in str(info.value)
