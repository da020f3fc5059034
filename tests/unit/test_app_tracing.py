"""Tracing: a span per request with a child span per Redis call (OpenTelemetry SDK's
in-memory exporter), and a clear boot error when the SDK is missing."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import pytest

from gateway_worker.app import BootError, build_app
from gateway_worker.config import Config


def test_tracing_without_sdk_is_a_boot_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the extra were missing.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    app = build_app(Config.model_validate({"observability": {"tracing": {"enabled": True}}}))
    with pytest.raises(BootError, match=r"pip install 'redis-gateway\[tracing\]'"):
        asyncio.run(app.startup())


def test_spans_per_request_and_redis_call(redis_url: str) -> None:
    exporters = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = exporters.InMemorySpanExporter()
    cfg = Config.model_validate(
        {
            "redis": {"url": redis_url},
            "observability": {
                "tracing": {"enabled": True, "sample_rate": 1.0, "service_name": "gw-test"}
            },
        }
    )

    async def main() -> list[Any]:
        app = build_app(cfg, span_exporter=exporter)
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                assert (await client.get("/set/traced/v")).status_code == 200
                assert (await client.get("/healthz")).status_code == 200
        finally:
            await app.shutdown()
        return list(exporter.get_finished_spans())

    spans = asyncio.run(main())
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"GET http", "redis SET"}, by_name
    request, redis_call = by_name["GET http"], by_name["redis SET"]
    assert redis_call.parent is not None
    assert redis_call.parent.span_id == request.context.span_id
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["db.operation.name"] == "SET"
    assert redis_call.attributes["db.system"] == "redis"
    assert "traced" not in repr(dict(redis_call.attributes))
    assert request.resource.attributes["service.name"] == "gw-test"
