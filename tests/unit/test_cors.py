"""CORS: preflight answers and the headers of actual responses."""

from __future__ import annotations

import json
from typing import Any

from gateway_worker.access.cors import Cors
from gateway_worker.config import CorsConfig

APP = "https://app.example.com"


def make(**settings: Any) -> Cors:
    return Cors(CorsConfig.model_validate({"enabled": True, **settings}))


def preflight_headers(origin: str = APP, method: str = "POST") -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": method}


def test_disabled_does_nothing() -> None:
    cors = Cors(CorsConfig())
    assert cors.preflight("OPTIONS", preflight_headers()) is None
    assert cors.response_headers({"origin": APP}) == []


def test_not_a_preflight() -> None:
    cors = make()
    assert cors.preflight("GET", preflight_headers()) is None
    assert cors.preflight("OPTIONS", {"origin": APP}) is None


def test_preflight_allowed_with_specific_origin_list() -> None:
    cors = make(allowed_origins=[APP], max_age_seconds=120)
    response = cors.preflight("OPTIONS", preflight_headers())
    assert response is not None and response.status == 204
    headers = dict(response.headers)
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Vary"] == "Origin"
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == (
        "Authorization, Content-Type, X-API-Key, Upstash-Encoding, Upstash-Response-Format, "
        "Upstash-Sync-Token, Upstash-Telemetry-Platform, Upstash-Telemetry-Runtime, "
        "Upstash-Telemetry-Sdk"
    )
    assert headers["Access-Control-Max-Age"] == "120"
    assert "Access-Control-Allow-Credentials" not in headers


def test_preflight_refused_origin_and_method() -> None:
    cors = make(allowed_origins=[APP])
    response = cors.preflight("OPTIONS", preflight_headers(origin="https://evil.example"))
    assert response is not None and response.status == 403
    assert "https://evil.example" in json.loads(response.body)["error"]
    response = cors.preflight("OPTIONS", preflight_headers(method="DELETE"))
    assert response is not None and response.status == 403
    assert "allowed_methods" in json.loads(response.body)["error"]


def test_wildcard_without_credentials_answers_star() -> None:
    cors = make()
    headers = dict(cors.response_headers({"origin": "https://any.example"}))
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in headers
    assert headers["Access-Control-Expose-Headers"] == "Upstash-Sync-Token, ETag"


def test_wildcard_with_credentials_echoes_origin() -> None:
    cors = make(allow_credentials=True)
    headers = dict(cors.response_headers({"origin": "https://any.example"}))
    assert headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"


def test_disallowed_origin_gets_no_allow_header() -> None:
    cors = make(allowed_origins=[APP])
    headers = cors.response_headers({"origin": "https://evil.example"})
    assert headers == [("Vary", "Origin")]
    assert cors.response_headers({}) == [("Vary", "Origin")]


def test_response_headers_do_not_repeat_preflight_headers() -> None:
    # The app adds response_headers() to every response, the preflight's included.
    cors = make(allowed_origins=[APP])
    assert cors.response_headers(preflight_headers()) == []
