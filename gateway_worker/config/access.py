"""`auth` and `policy`: who may call the gateway, and which commands."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway_worker.config.fields import DANGEROUS_COMMANDS, CommandName, Section

CommandPolicyName = Literal["all", "all_but_dangerous", "safe", "read_only"]


class ApiKeyConfig(Section):
    """One API key (also usable as an Upstash bearer token)."""

    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name used in logs and metrics (never the key itself).",
    )
    key: SecretStr = Field(..., description="The key. Secret: at least 16 characters.")
    policy: CommandPolicyName = Field("all_but_dangerous", description="Commands this key may run.")
    key_prefix: str | None = Field(
        None, description="If set, every key this credential touches must start with it."
    )
    admin: bool = Field(False, description="May use /admin/* endpoints.")

    @field_validator("key")
    @classmethod
    def _check_key_length(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key.strip():
            raise ValueError("API key must not be blank")
        if key != key.strip() or any(ord(c) < 32 or ord(c) == 127 for c in key):
            raise ValueError(
                "API key must not hold leading/trailing whitespace or "
                "control characters (it travels in an HTTP header)"
            )
        if len(key) < 16:
            raise ValueError("API key must be at least 16 characters")
        return value


class RateLimitConfig(Section):
    """Per-credential (or per client IP) rate limit, shared by all workers through Redis."""

    enabled: bool = Field(False, description="Apply the rate limit.")
    requests_per_minute: int = Field(600, ge=1, description="Sustained rate allowed.")
    burst_size: int = Field(100, ge=1, description="Requests allowed at once above the rate.")
    window_size_seconds: int = Field(60, ge=1, le=86400, description="Accounting window.")
    failure_mode: Literal["open", "closed"] = Field(
        "open",
        description="When Redis cannot be asked: 'open' lets requests through, "
        "'closed' answers 503.",
    )
    lease_size: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Requests a worker counts in Redis at once for a credential, then "
        "allows locally (within 1 s) without asking Redis again: one Redis call per "
        "lease instead of per request. 1: exact, one call per request. Never more than "
        "the sustained rate is served; a burst may exceed `burst_size` by up to one lease "
        "per worker. Default (unset): `burst_size // 16`, from 1 to 64 (1 below a burst "
        "of 32).",
    )

    @property
    def lease(self) -> int:
        """The lease size in effect (see ``lease_size``)."""
        if self.lease_size is not None:
            return self.lease_size
        return max(1, min(64, self.burst_size // 16))


class AuthConfig(Section):
    """Who may call the gateway."""

    enabled: bool = Field(False, description="Require a JWT or an API key on every request.")
    jwt_secret: SecretStr | None = Field(None, description="HS256 signing secret for JWTs. Secret.")

    jwt_previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        max_length=8,
        description="Earlier JWT secrets still accepted (never used to sign) while a "
        "rotation is under way: add the old secret here when `jwt_secret` changes, remove "
        "it once tokens signed with it have expired. Secret.",
    )

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty or blank (unset it to turn JWTs off)")
        return value

    @field_validator("jwt_previous_secrets")
    @classmethod
    def _check_previous(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not v.get_secret_value().strip() for v in value):
            raise ValueError("must not hold an empty or blank secret")
        return value

    jwt_expiry_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="Longest lifetime accepted for a JWT (exp - iat).",
    )
    jwt_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew tolerated when checking exp/nbf."
    )
    api_key_header: str = Field(
        "X-API-Key",
        min_length=1,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header carrying an API key.",
    )
    api_keys: list[ApiKeyConfig] = Field(
        default_factory=list, description="API keys (Upstash bearer tokens too)."
    )
    rate_limiting: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="Rate limiting."
    )

    @model_validator(mode="after")
    def _check_credentials(self) -> AuthConfig:
        if self.enabled and self.jwt_secret is None and not self.api_keys:
            raise ValueError("auth.enabled needs auth.jwt_secret or at least one auth.api_keys")
        if self.jwt_previous_secrets and self.jwt_secret is None:
            raise ValueError("auth.jwt_previous_secrets needs auth.jwt_secret (the current one)")
        names = [k.name for k in self.api_keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate API key names: {dupes}")
        return self


class PolicyConfig(Section):
    """Command policy applied to every request before the credential's own policy."""

    denied_commands: list[CommandName] = Field(
        default_factory=lambda: list(DANGEROUS_COMMANDS),
        description="Commands refused (403) unless a credential's policy is 'all'.",
    )
    allowed_commands: list[CommandName] = Field(
        default_factory=list,
        description="Extra commands added to the safe set when features.raw_commands is false.",
    )
