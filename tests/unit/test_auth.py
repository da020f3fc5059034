"""Authentication: API keys (header, Bearer, ?_token=), HS256 JWTs and their refusals."""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import jwt
import pytest

from gateway_worker.access.auth import Authenticator, AuthError
from gateway_worker.config import Config

SECRET = "s" * 40
KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"


def make(**auth: Any) -> Authenticator:
    base: dict[str, Any] = {
        "enabled": True,
        "jwt_secret": SECRET,
        "api_keys": [
            {"name": "svc-a", "key": KEY_A},
            {
                "name": "svc-b",
                "key": KEY_B,
                "policy": "read_only",
                "key_prefix": "b:",
                "admin": True,
            },
        ],
    }
    base.update(auth)
    return Authenticator(Config.model_validate({"auth": base}))


def token(claims: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    with warnings.catch_warnings():  # short test secrets are the point of some tests
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=alg)


def fresh(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iat": now, "exp": now + 600, **extra}


def refused(
    auth: Authenticator,
    headers: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
) -> AuthError:
    with pytest.raises(AuthError) as exc:
        auth.authenticate(headers or {}, query or [], "10.0.0.1")
    assert exc.value.status == 401
    return exc.value


def test_disabled_auth_gives_anonymous_keyed_by_ip() -> None:
    auth = Authenticator(Config())
    principal = auth.authenticate({}, [], "10.0.0.9")
    assert (principal.name, principal.policy, principal.rate_key) == (
        "anonymous",
        "all_but_dangerous",
        "ip:10.0.0.9",
    )


def test_api_key_in_header_bearer_and_query() -> None:
    auth = make()
    assert auth.authenticate({"x-api-key": KEY_A}, [], "ip").name == "svc-a"
    principal = auth.authenticate({"authorization": f"Bearer {KEY_B}"}, [], "ip")
    assert (principal.name, principal.policy, principal.key_prefix, principal.admin) == (
        "svc-b",
        "read_only",
        "b:",
        True,
    )
    assert principal.rate_key == "key:svc-b"
    assert auth.authenticate({}, [("_token", KEY_A)], "ip").name == "svc-a"


def test_custom_api_key_header() -> None:
    auth = make(api_key_header="X-Gateway-Key")
    assert auth.authenticate({"x-gateway-key": KEY_A}, [], "ip").name == "svc-a"


def test_missing_and_unknown_credentials() -> None:
    auth = make()
    assert "missing credentials" in refused(auth).message
    error = refused(auth, {"x-api-key": "wrong-key-0123456789"})
    assert "unknown API key" in error.message
    assert "wrong-key" not in error.message
    assert "Bearer" in refused(auth, {"authorization": "Basic dXNlcjpwdw=="}).message


def test_valid_jwt_with_claims() -> None:
    auth = make()
    claims = fresh(policy="safe", key_prefix="alice:", admin=False)
    principal = auth.authenticate({"authorization": f"Bearer {token(claims)}"}, [], "ip")
    assert (principal.name, principal.policy, principal.key_prefix, principal.rate_key) == (
        "jwt:alice",
        "safe",
        "alice:",
        "jwt:alice",
    )


def test_expired_jwt_beyond_leeway() -> None:
    now = int(time.time())
    expired = token({"sub": "a", "iat": now - 600, "exp": now - 100})
    error = refused(make(), {"authorization": f"Bearer {expired}"})
    assert error.message == "JWT expired"
    assert expired not in error.message


def test_leeway_tolerates_small_skew() -> None:
    now = int(time.time())
    slightly = token({"sub": "a", "iat": now - 600, "exp": now - 5})
    assert make().authenticate({}, [("_token", slightly)], "ip").name == "jwt:a"


def test_bad_signature_and_wrong_secret() -> None:
    forged = token(fresh(), secret="t" * 40)
    assert refused(make(), {"authorization": f"Bearer {forged}"}).message == (
        "JWT signature does not match"
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused() -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(fresh())}."
    error = refused(make(), {"authorization": f"Bearer {unsigned}"})
    assert "algorithm not allowed" in error.message


def test_algorithm_confusion_is_refused() -> None:
    # An HS512 token (or an RS256 header signed with the secret as "public key")
    # must not be accepted: only HS256 is pinned.
    other = token(fresh(), alg="HS512")
    assert "algorithm not allowed" in refused(make(), {"authorization": f"Bearer {other}"}).message
    rs256 = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(fresh())}.c2lnbmF0dXJl"
    assert "algorithm not allowed" in refused(make(), {}, [("_token", rs256)]).message


def test_exp_is_required() -> None:
    no_exp = token({"sub": "a", "iat": int(time.time())})
    assert "'exp'" in refused(make(), {"authorization": f"Bearer {no_exp}"}).message


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iat": 3600}, "JWT iat is in the future"),
        ({"nbf": 3600}, "JWT not valid yet (nbf is in the future)"),
        ({"exp": "9999999999"}, "JWT exp must be a number"),
        ({"exp": True}, "JWT exp must be a number"),
        ({"iat": "now"}, "JWT iat must be a number"),
        ({"nbf": [1]}, "JWT nbf must be a number"),
    ],
)
def test_time_claims_say_what_is_wrong(claims: dict[str, Any], message: str) -> None:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "a", "iat": now, "exp": now + 7200}
    for name, value in claims.items():  # ints are offsets from now
        base[name] = now + value if type(value) is int else value
    error = refused(make(), {"authorization": f"Bearer {token(base)}"})
    assert error.message.startswith(message), error.message


def test_time_claims_within_the_leeway_are_accepted() -> None:
    now = int(time.time())
    skewed = token({"sub": "a", "iat": now + 20, "nbf": now + 20, "exp": now + 600})
    assert make().authenticate({}, [("_token", skewed)], "ip").name == "jwt:a"
    fractional = token({"sub": "a", "iat": now + 0.5, "exp": now + 600.5})
    assert make().authenticate({}, [("_token", fractional)], "ip").name == "jwt:a"


def test_lifetime_longer_than_jwt_expiry_hours_is_refused() -> None:
    now = int(time.time())
    long_lived = token({"sub": "a", "iat": now, "exp": now + 48 * 3600})
    assert "jwt_expiry_hours" in refused(make(), {}, [("_token", long_lived)]).message
    no_iat = token({"sub": "a", "exp": now + 48 * 3600})
    assert "jwt_expiry_hours" in refused(make(), {}, [("_token", no_iat)]).message


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"policy": "root"}, "'policy'"),
        ({"key_prefix": 5}, "'key_prefix'"),
        ({"admin": "yes"}, "'admin'"),
        ({"sub": ""}, "'sub'"),
    ],
)
def test_bad_claims(claims: dict[str, Any], fragment: str) -> None:
    bad = token(fresh(**claims))
    assert fragment in refused(make(), {"authorization": f"Bearer {bad}"}).message


def test_malformed_jwt() -> None:
    assert refused(make(), {}, [("_token", "a.b.c")]).message == "malformed JWT"


def test_short_secret_does_not_warn_per_request() -> None:
    auth = make(jwt_secret="short-secret")
    good = token(fresh(), secret="short-secret")  # PyJWT warns here, in the test only
    assert auth.authenticate({}, [("_token", good)], "ip").name == "jwt:alice"


def test_all_keys_are_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr("gateway_worker.access.auth.hmac.compare_digest", counting)
    make().authenticate({"x-api-key": KEY_A}, [], "ip")  # matches the first key
    assert len(calls) == 2  # ... and still compared with the second


def test_a_rotation_accepts_previous_secrets_until_they_are_removed() -> None:
    old, new = "o" * 40, "n" * 40
    signed_old, signed_new = token(fresh(), secret=old), token(fresh(), secret=new)
    rotating = make(jwt_secret=new, jwt_previous_secrets=[old])
    for signed in (signed_old, signed_new):
        assert rotating.authenticate({"authorization": f"Bearer {signed}"}, [], "1.2.3.4").name
    done = make(jwt_secret=new)
    error = refused(done, {"authorization": f"Bearer {signed_old}"})
    assert "JWT signature does not match" in str(error)
    stranger = token(fresh(), secret="x" * 40)
    error = refused(rotating, {"authorization": f"Bearer {stranger}"})
    assert "JWT signature does not match" in str(error)


def test_previous_secrets_need_a_current_one_and_are_not_blank() -> None:
    with pytest.raises(ValueError, match=r"jwt_previous_secrets needs auth\.jwt_secret"):
        Config.model_validate({"auth": {"jwt_previous_secrets": ["o" * 40]}})
    with pytest.raises(ValueError, match="must not hold an empty or blank secret"):
        Config.model_validate({"auth": {"jwt_secret": "n" * 40, "jwt_previous_secrets": [" "]}})
