"""Authentication: who is calling (API key, HS256 JWT, or anonymous).

Interface used by the app::

    authenticator = Authenticator(config)
    principal = authenticator.authenticate(headers, query, client_ip)   # or AuthError

* ``headers``: lower-case header names; ``query``: decoded ``(name, value)`` pairs.
* ``auth.enabled = false`` → ``Principal("anonymous", "all_but_dangerous",
  rate_key="ip:<client_ip>")`` for every request.
* Otherwise the credential is taken from, in this order (the first present wins):
  the ``auth.api_key_header`` header, ``Authorization: Bearer <token>``, ``?_token=``
  (the two Upstash forms). A token that matches no API key and looks like a JWT is
  verified as one.
* API keys are compared in constant time: the candidate's SHA-256 is compared with
  every configured key's SHA-256 with ``hmac.compare_digest``, all keys every time
  (no early exit telling which key, or how many characters, matched).
* JWTs: HS256 only, signed with ``auth.jwt_secret`` (``algorithms`` pinned, so
  ``alg: none`` and RS/HS algorithm confusion are refused); ``exp`` is required and
  enforced with ``auth.jwt_leeway_seconds`` of leeway, as are ``nbf``/``iat`` when
  present (each must be a number: ``"exp": "123"`` is refused, and the message says
  which claim is wrong); the lifetime ``exp - iat`` (or ``exp - now`` without ``iat``)
  must not exceed ``auth.jwt_expiry_hours``; ``sub`` names the principal
  (``jwt:<sub>``); optional claims ``policy`` (all | all_but_dangerous | safe |
  read_only), ``key_prefix`` (string) and ``admin`` (bool).
* Failures raise ``AuthError(401, message)``; the message says what was wrong
  (missing, unknown API key, expired, bad signature, ...) and never contains the token.

Rate-limit keys are namespaced so an API key name can never collide with a client IP:
``key:<name>``, ``jwt:<sub>``, ``ip:<address>``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import cast, get_args

import jwt

from gateway_worker.config import Config
from gateway_worker.errors import GatewayError
from gateway_worker.exchange import PolicyName, Principal

_POLICIES: tuple[str, ...] = get_args(PolicyName)
_MIN_HS256_SECRET_BYTES = 32


class AuthError(GatewayError):
    """A request could not be authenticated (``status`` is 401), or is not allowed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Authenticator:
    """Turns request credentials into a ``Principal``."""

    def __init__(self, config: Config) -> None:
        auth = config.auth
        self.enabled = auth.enabled
        self.header = auth.api_key_header.lower()
        self._keys: list[tuple[bytes, Principal]] = [
            (
                hashlib.sha256(k.key.get_secret_value().encode()).digest(),
                Principal(
                    name=k.name,
                    policy=k.policy,
                    key_prefix=k.key_prefix,
                    admin=k.admin,
                    rate_key=f"key:{k.name}",
                ),
            )
            for k in auth.api_keys
        ]
        secret = auth.jwt_secret.get_secret_value() if auth.jwt_secret is not None else None
        self._jwt_secret: bytes | None = secret.encode() if secret is not None else None
        #: The current secret first, then those of a rotation under way.
        self._jwt_secrets: list[bytes] = (
            [self._jwt_secret, *(s.get_secret_value().encode() for s in auth.jwt_previous_secrets)]
            if self._jwt_secret is not None
            else []
        )
        self._leeway = auth.jwt_leeway_seconds
        self._max_lifetime = auth.jwt_expiry_hours * 3600.0
        # Short secrets are a configuration matter (the prod profile refuses them);
        # PyJWT's per-call warning would otherwise fire on every request.
        self._quiet_short_secret = any(len(s) < _MIN_HS256_SECRET_BYTES for s in self._jwt_secrets)

    def authenticate(
        self, headers: Mapping[str, str], query: Sequence[tuple[str, str]], client_ip: str
    ) -> Principal:
        """The caller's principal; raises ``AuthError`` when credentials are missing/invalid."""
        if not self.enabled:
            return Principal("anonymous", "all_but_dangerous", rate_key=f"ip:{client_ip}")
        token, source = self._credential(headers, query)
        principal = self._match_api_key(token)
        if principal is not None:
            return principal
        if self._jwt_secret is not None and token.count(".") == 2:
            return self._verify_jwt(token)
        if source == self.header:
            raise AuthError(401, f"unknown API key in the {self.header} header")
        raise AuthError(401, f"unknown API key or invalid token in {source}")

    def _credential(
        self, headers: Mapping[str, str], query: Sequence[tuple[str, str]]
    ) -> tuple[str, str]:
        value = headers.get(self.header)
        if value:
            return value.strip(), self.header
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(401, "unsupported Authorization header: expected 'Bearer <token>'")
            return token.strip(), "the Authorization header"
        for name, value in query:
            if name == "_token" and value:
                return value, "the _token query parameter"
        raise AuthError(
            401,
            f"missing credentials: send an API key in the {self.header} header, "
            f"'Authorization: Bearer <token>' or ?_token=<token>",
        )

    def _match_api_key(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for key_digest, principal in self._keys:
            # No early exit: every key is compared whatever matched before.
            if hmac.compare_digest(digest, key_digest):
                found = principal
        return found

    def _verify_jwt(self, token: str) -> Principal:
        try:
            claims = self._decode(token)
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(401, f"JWT lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError(401, "JWT signature does not match") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(401, "JWT algorithm not allowed (only HS256 is accepted)") from None
        except jwt.DecodeError:
            raise AuthError(401, "malformed JWT") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid JWT ({type(exc).__name__})") from None
        self._check_times(claims)
        return self._principal_from_claims(claims)

    def _decode(self, token: str) -> dict[str, object]:
        """The verified claims, with the current secret or one of a rotation under way
        (``auth.jwt_previous_secrets``); the last error when none signed it."""
        last: jwt.InvalidSignatureError | None = None
        for secret in self._jwt_secrets:
            try:
                with warnings.catch_warnings():
                    if self._quiet_short_secret:
                        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                    # The time claims are checked by _check_times, after the signature:
                    # PyJWT's messages cannot tell a future iat from a future nbf, and it
                    # reads exp "123" as a number.
                    claims: dict[str, object] = jwt.decode(
                        token,
                        secret,
                        algorithms=["HS256"],
                        options={
                            "require": ["exp"],
                            "verify_exp": False,
                            "verify_nbf": False,
                            "verify_iat": False,
                        },
                    )
                    return claims
            except jwt.InvalidSignatureError as exc:
                last = exc
        assert last is not None
        raise last

    def _check_times(self, claims: Mapping[str, object]) -> None:
        """``exp`` (required), ``nbf`` and ``iat``: numbers, within the leeway, and a
        lifetime of at most ``auth.jwt_expiry_hours``."""
        now = time.time()
        exp = _time_claim(claims, "exp")
        nbf = _time_claim(claims, "nbf")
        iat = _time_claim(claims, "iat")
        assert exp is not None  # required: PyJWT refused a token without it
        if exp <= now - self._leeway:
            raise AuthError(401, "JWT expired")
        if nbf is not None and nbf > now + self._leeway:
            raise AuthError(401, "JWT not valid yet (nbf is in the future)")
        if iat is not None and iat > now + self._leeway:
            raise AuthError(401, "JWT iat is in the future (issued-at cannot be later than now)")
        start = iat if iat is not None else now
        if exp - start > self._max_lifetime + self._leeway:
            raise AuthError(
                401,
                f"JWT lifetime exceeds auth.jwt_expiry_hours ({self._max_lifetime / 3600:g} h)",
            )

    def _principal_from_claims(self, claims: Mapping[str, object]) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError(401, "JWT lacks a 'sub' claim (a non-empty string)")
        policy = claims.get("policy", "all_but_dangerous")
        if policy not in _POLICIES:
            raise AuthError(401, f"JWT 'policy' claim must be one of {list(_POLICIES)}")
        key_prefix = claims.get("key_prefix")
        if key_prefix is not None and not isinstance(key_prefix, str):
            raise AuthError(401, "JWT 'key_prefix' claim must be a string")
        admin = claims.get("admin", False)
        if not isinstance(admin, bool):
            raise AuthError(401, "JWT 'admin' claim must be true or false")
        return Principal(
            name=f"jwt:{sub}",
            policy=cast(PolicyName, policy),
            key_prefix=key_prefix,
            admin=admin,
            rate_key=f"jwt:{sub}",
        )


def _time_claim(claims: Mapping[str, object], name: str) -> float | None:
    """A NumericDate claim (RFC 7519: seconds since the epoch), None when absent."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(401, f"JWT {name} must be a number (seconds since the epoch)")
    return float(value)
