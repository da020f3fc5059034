"""Each profile rule, in the profiles that enforce it, reported with key and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import ConfigError, ConfigInputs, load_config

STRONG = "x" * 32
PROD_OK = (
    "auth.enabled=true",
    f"auth.jwt_secret={STRONG}",
    "redis.url=redis://redis.internal:6379",
)


def problems(profile: str, *overrides: str) -> list[str]:
    try:
        load_config(ConfigInputs(profile=profile, overrides=overrides, env={}))
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_prod_baseline_is_valid() -> None:
    assert problems("prod", *PROD_OK) == []


def test_dev_has_no_profile_rules() -> None:
    assert problems("dev", "features.debug_mode=true", "auth.jwt_secret=short") == []


@pytest.mark.parametrize("profile", ["staging", "prod"])
def test_debug_mode_refused(profile: str) -> None:
    found = problems(profile, *PROD_OK, "features.debug_mode=true")
    assert found == [
        f"features.debug_mode: debug mode is refused in {profile} "
        "(got True; from --set features.debug_mode)"
    ]


def test_prod_requires_auth() -> None:
    found = problems("prod", "redis.url=redis://r:1")
    assert found == [
        "auth.enabled: authentication must be enabled in prod (got False; from default)"
    ]
    assert problems("staging", "redis.url=redis://r:1") == []


@pytest.mark.parametrize("profile", ["staging", "prod"])
def test_short_jwt_secret_refused_without_showing_it(profile: str) -> None:
    found = problems(profile, *PROD_OK, "auth.jwt_secret=short-secret-value")
    assert len(found) == 1
    assert found[0].startswith("auth.jwt_secret: must be at least 32 bytes")
    assert "short-secret-value" not in found[0]
    # Bytes, not characters: 11 three-byte characters are 33 bytes.
    assert problems(profile, *PROD_OK, "auth.jwt_secret=" + "€" * 11) == []


@pytest.mark.parametrize("profile", ["staging", "prod"])
def test_wildcard_cors_with_credentials_refused(profile: str) -> None:
    found = problems(
        profile,
        *PROD_OK,
        "server.cors.enabled=true",
        "server.cors.allow_credentials=true",
        'server.cors.allowed_origins=["*"]',
    )
    assert len(found) == 1
    assert "cannot be combined with server.cors.allow_credentials" in found[0]
    assert found[0].startswith("server.cors.allowed_origins:")


def test_prod_wildcard_cors_needs_auth() -> None:
    found = problems("prod", "redis.url=redis://r:1", "server.cors.enabled=true")
    assert any("a '*' origin needs auth.enabled in prod" in p for p in found)
    assert problems("staging", "redis.url=redis://r:1", "server.cors.enabled=true") == []


@pytest.mark.parametrize("profile", ["staging", "prod"])
def test_admin_endpoints_need_auth(profile: str) -> None:
    found = problems(
        profile,
        "redis.url=redis://r:1",
        "features.admin_endpoints=true",
        f"auth.jwt_secret={STRONG}",
    )
    assert any(
        p.startswith("features.admin_endpoints: admin endpoints need auth.enabled") for p in found
    )


@pytest.mark.parametrize("profile", ["staging", "prod"])
def test_explicit_redis_url_required(profile: str) -> None:
    found = problems(profile, "auth.enabled=true", f"auth.jwt_secret={STRONG}")
    assert found == [
        f"redis.url: must be set explicitly in {profile} (the embedded Redis is "
        "for dev only) (from default)"
    ]


def test_profile_problems_reported_with_schema_problems() -> None:
    found = problems("prod", "server.port=70000", "features.debug_mode=true")
    assert any(p.startswith("server.port:") for p in found)
    assert any(p.startswith("features.debug_mode:") for p in found)
    assert any(p.startswith("auth.enabled:") for p in found)


def test_file_profile_conflicting_with_chosen_profile() -> None:
    found = problems("dev", "profile=prod")
    assert found == [
        "profile: conflicts with the profile 'dev' chosen by --profile "
        "(got 'prod'; from --set profile)"
    ]


def test_unknown_profile_from_env() -> None:
    with pytest.raises(ConfigError, match=r"profile: must be one of"):
        load_config(ConfigInputs(env={"REDIS_GATEWAY_PROFILE": "production"}))


def test_invalid_profile_in_main_file_reported_once(tmp_path: Path) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text('profile = "production"\n')
    with pytest.raises(ConfigError) as info:
        load_config(ConfigInputs(config_path=main, env={}))
    assert [str(p) for p in info.value.problems] == [
        f"profile: must be one of ['dev', 'staging', 'prod'] (got 'production'; from file {main}:1)"
    ]


PLACEHOLDERS = (
    "REPLACE-ME",
    "changeme",
    "Change-Me",
    "PLACEHOLDER",
    "secret",
    " Password ",
    "...",
    "REPLACE-ME-with-at-least-32-random-bytes-0000",
    "prefix-replace_me-0123456789abcdef",
)
RULE = "must not be a placeholder (such as REPLACE-ME or changeme) in {}"


def placeholder_problems(
    profile: str, *overrides: str, secrets_dir: Path | None = None
) -> list[str]:
    try:
        load_config(
            ConfigInputs(
                profile=profile,
                overrides=(*PROD_OK, *overrides),
                secrets_dir=secrets_dir,
                env={},
            )
        )
    except ConfigError as exc:
        return [p for p in exc.problems if "not be a placeholder" in p]
    return []


@pytest.mark.parametrize("profile", ["staging", "prod"])
@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholder_secrets_refused(profile: str, placeholder: str, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis.default_password").write_text(placeholder)
    (secrets / "redis.default_password").chmod(0o600)
    found = placeholder_problems(profile, f"auth.jwt_secret={placeholder}", secrets_dir=secrets)
    rule = RULE.format(profile)
    assert found == [
        f"redis.default_password: {rule} (value hidden: secret; from secret file "
        f"{secrets / 'redis.default_password'})",
        f"auth.jwt_secret: {rule} (value hidden: secret; from --set auth.jwt_secret)",
    ]


@pytest.mark.parametrize("profile", ["staging", "prod"])
def test_placeholder_api_keys_refused(profile: str) -> None:
    keys = (
        '[{"name": "ok", "key": "a-real-key-8c1d2e3f4a5b"}, '
        '{"name": "bad", "key": "REPLACE-ME-0123456789abcdef"}]'
    )
    assert placeholder_problems(profile, f"auth.api_keys={keys}") == [
        f"auth.api_keys.1.key: {RULE.format(profile)} (value hidden: secret; "
        "from --set auth.api_keys)"
    ]


def test_placeholder_secrets_are_fine_in_dev_and_real_ones_everywhere() -> None:
    assert problems("dev", "auth.jwt_secret=changeme", "redis.default_password=REPLACE-ME") == []
    # Values that merely contain "secret" or "password" are not placeholders.
    real = ("redis.default_password=my-password-is-7f3a91c2", "auth.jwt_secret=" + "s3cret" * 6)
    assert placeholder_problems("prod", *real) == []
