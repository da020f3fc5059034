"""Generated reference is current; examples are valid; every key is documented."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from gateway_worker.config import Config, dump_redacted
from supervisor.config import ConfigError, ConfigInputs, load_config
from supervisor.config.docs import render_markdown
from supervisor.config.layers import flatten
from supervisor.config.schema import env_var_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_configuration_md_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_markdown(), (
        "docs/configuration.md is stale: run scripts/gen-config-docs and commit it"
    )


def test_every_key_is_documented_with_its_env_var() -> None:
    text = render_markdown()
    for path, _ in flatten(dump_redacted(Config())):
        key = ".".join(path)
        assert f"### `{key}`" in text, key
        if key != "profile":
            assert f"`{env_var_name(key)}`" in text, key
    assert "### `auth.api_keys[].key`" in text


def test_loading_doc_lists_every_profile_rule() -> None:
    from supervisor.config.profiles import RULES

    text = (ROOT / "docs" / "configuration-loading.md").read_text()
    for rule in RULES:
        assert f"`{rule.key}`" in text, rule.key


def test_example_dev_is_valid() -> None:
    loaded = load_config(ConfigInputs(config_path=EXAMPLES / "gateway.toml", env={}))
    assert loaded.config.profile == "dev"
    assert loaded.config.observability.metrics.port != loaded.config.server.port
    # The dev overlay beside it is applied.
    assert loaded.config.features.debug_mode is True
    assert loaded.provenance["features.debug_mode"].startswith(
        f"profile file {EXAMPLES / 'gateway.dev.toml'}:"
    )


def test_example_prod_is_valid_with_its_secret(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "auth.jwt_secret").write_text("p" * 48 + "\n")
    (secrets / "auth.jwt_secret").chmod(0o400)
    loaded = load_config(
        ConfigInputs(
            config_path=EXAMPLES / "gateway.toml", profile="prod", secrets_dir=secrets, env={}
        )
    )
    assert loaded.config.auth.enabled is True
    assert loaded.config.observability.metrics.port != loaded.config.server.port
    assert loaded.warnings == ()


def test_example_prod_without_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"auth\.enabled needs auth\.jwt_secret"):
        load_config(ConfigInputs(config_path=EXAMPLES / "gateway.toml", profile="prod", env={}))


def test_env_example_is_valid() -> None:
    env = {}
    for line in (EXAMPLES / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    env["REDIS_GATEWAY_CONFIG"] = str(EXAMPLES / "gateway.toml")
    loaded = load_config(ConfigInputs(env=env))
    assert loaded.config.server.cors.allowed_origins == ["http://localhost:3000"]
    assert loaded.provenance["server.port"] == "env REDIS_GATEWAY_SERVER__PORT"
