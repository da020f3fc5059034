"""One test per precedence rule: defaults < file < profile < ConfigMap < secrets < env < --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import ConfigError, ConfigInputs, load_config

SECRET_A = "secret-from-layer-a-0123456789abcdef"
SECRET_B = "secret-from-layer-b-0123456789abcdef"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_precedence_file_over_defaults(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", "[server]\nport = 8100\n")
    loaded = load_config(ConfigInputs(config_path=main, env={}))
    assert loaded.config.server.port == 8100
    assert loaded.provenance["server.port"] == f"file {main}:2"
    assert loaded.provenance["server.max_connections"] == "default"
    # dev's own default (issue 8: README command 1 must not face a network).
    assert loaded.provenance["server.host"] == "default for the dev profile"
    assert loaded.config.server.host == "127.0.0.1"


def test_precedence_profile_over_file(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", "[server]\nport = 8100\nhost = '127.0.0.1'\n")
    overlay = write(tmp_path / "gateway.staging.toml", "\n[server]\nport = 8200\n")
    loaded = load_config(
        ConfigInputs(
            config_path=main, profile="staging", overrides=("redis.url=redis://r:6379",), env={}
        )
    )
    assert loaded.config.server.port == 8200
    assert loaded.provenance["server.port"] == f"profile file {overlay}:3"
    # Deep merge: the overlay's [server] does not wipe the file's other server keys.
    assert loaded.config.server.host == "127.0.0.1"
    assert overlay in loaded.watched_paths


def test_profile_overlay_of_another_profile_is_ignored(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", "[server]\nport = 8100\n")
    write(tmp_path / "gateway.prod.toml", "[server]\nport = 8300\n")
    assert load_config(ConfigInputs(config_path=main, env={})).config.server.port == 8100


def test_precedence_configmap_over_profile(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", "[server]\nport = 8100\n")
    write(tmp_path / "gateway.dev.toml", "[server]\nport = 8200\n")
    cm = tmp_path / "cm"
    write(cm / "server.port", "8300\n")
    loaded = load_config(ConfigInputs(config_path=main, configmap_dir=cm, env={}))
    assert loaded.config.server.port == 8300
    assert loaded.provenance["server.port"] == f"configmap {cm / 'server.port'}"


def test_precedence_secrets_over_configmap(tmp_path: Path) -> None:
    cm, sec = tmp_path / "cm", tmp_path / "sec"
    write(cm / "redis__url", "redis://from-configmap:6379")
    write(sec / "redis.url", "redis://from-secret:6379\n")
    loaded = load_config(ConfigInputs(configmap_dir=cm, secrets_dir=sec, env={}))
    assert loaded.config.redis.url == "redis://from-secret:6379"
    assert loaded.provenance["redis.url"] == f"secret file {sec / 'redis.url'}"


def test_precedence_env_over_secrets(tmp_path: Path) -> None:
    sec = tmp_path / "sec"
    write(sec / "auth.jwt_secret", SECRET_A)
    loaded = load_config(
        ConfigInputs(secrets_dir=sec, env={"REDIS_GATEWAY_AUTH__JWT_SECRET": SECRET_B})
    )
    assert loaded.config.auth.jwt_secret is not None
    assert loaded.config.auth.jwt_secret.get_secret_value() == SECRET_B
    assert loaded.provenance["auth.jwt_secret"] == "env REDIS_GATEWAY_AUTH__JWT_SECRET"


def test_precedence_set_over_env() -> None:
    loaded = load_config(
        ConfigInputs(overrides=("server.port=8400",), env={"REDIS_GATEWAY_SERVER__PORT": "8300"})
    )
    assert loaded.config.server.port == 8400
    assert loaded.provenance["server.port"] == "--set server.port"


def test_file_indirection_reads_the_secret(tmp_path: Path) -> None:
    target = write(tmp_path / "jwt", SECRET_A + "\n")
    main = write(tmp_path / "gateway.toml", f'[auth]\njwt_secret_file = "{target}"\n')
    loaded = load_config(ConfigInputs(config_path=main, env={}))
    assert loaded.config.auth.jwt_secret is not None
    assert loaded.config.auth.jwt_secret.get_secret_value() == SECRET_A
    assert loaded.provenance["auth.jwt_secret"].startswith(f"secret file {target}")
    assert target in loaded.watched_paths
    assert "auth.jwt_secret_file" not in loaded.provenance


def test_file_indirection_at_its_layers_precedence(tmp_path: Path) -> None:
    # env's *_file beats the main file's plain value ...
    target = write(tmp_path / "jwt", SECRET_B)
    main = write(tmp_path / "gateway.toml", f'[auth]\njwt_secret = "{SECRET_A}"\n')
    loaded = load_config(
        ConfigInputs(config_path=main, env={"REDIS_GATEWAY_AUTH__JWT_SECRET_FILE": str(target)})
    )
    assert loaded.config.auth.jwt_secret is not None
    assert loaded.config.auth.jwt_secret.get_secret_value() == SECRET_B
    # ... and a later plain value beats an earlier *_file, which is then not even read.
    main.write_text('[auth]\njwt_secret_file = "/nonexistent/jwt"\n')
    loaded = load_config(
        ConfigInputs(config_path=main, overrides=(f"auth.jwt_secret={SECRET_A}",), env={})
    )
    assert loaded.config.auth.jwt_secret is not None
    assert loaded.config.auth.jwt_secret.get_secret_value() == SECRET_A


def test_file_indirection_in_api_key_items(tmp_path: Path) -> None:
    target = write(tmp_path / "key", SECRET_A)
    main = write(
        tmp_path / "gateway.toml", f'[[auth.api_keys]]\nname = "ci"\nkey_file = "{target}"\n'
    )
    loaded = load_config(ConfigInputs(config_path=main, env={}))
    assert loaded.config.auth.api_keys[0].key.get_secret_value() == SECRET_A


def test_both_value_and_file_in_one_layer_is_an_error(tmp_path: Path) -> None:
    target = write(tmp_path / "jwt", SECRET_A)
    main = write(
        tmp_path / "gateway.toml",
        f'[auth]\njwt_secret = "{SECRET_B}"\njwt_secret_file = "{target}"\n',
    )
    with pytest.raises(ConfigError, match="set either jwt_secret or jwt_secret_file"):
        load_config(ConfigInputs(config_path=main, env={}))


def test_real_tls_file_keys_are_not_indirections(tmp_path: Path) -> None:
    loaded = load_config(ConfigInputs(overrides=("redis.tls.ca_file=/etc/ca.pem",), env={}))
    assert loaded.config.redis.tls.ca_file == "/etc/ca.pem"


def test_deep_merge_keeps_sibling_keys_across_layers(tmp_path: Path) -> None:
    main = write(
        tmp_path / "gateway.toml",
        "[server]\nport = 8100\n[server.cors]\nenabled = true\nmax_age_seconds = 5\n",
    )
    loaded = load_config(
        ConfigInputs(config_path=main, env={"REDIS_GATEWAY_SERVER__CORS__MAX_AGE_SECONDS": "7"})
    )
    assert loaded.config.server.cors.enabled is True
    assert loaded.config.server.cors.max_age_seconds == 7
    assert loaded.config.server.port == 8100


@pytest.mark.parametrize(
    "suffix,text",
    [
        (".yaml", "server:\n  port: 8100\n"),
        (".json", '{\n  "server": {\n    "port": 8100\n  }\n}\n'),
    ],
)
def test_yaml_and_json_main_files(tmp_path: Path, suffix: str, text: str) -> None:
    main = write(tmp_path / f"gateway{suffix}", text)
    loaded = load_config(ConfigInputs(config_path=main, env={}))
    assert loaded.config.server.port == 8100
    assert loaded.provenance["server.port"] in (f"file {main}:2", f"file {main}:3")


def test_profile_from_env_and_from_file(tmp_path: Path) -> None:
    loaded = load_config(
        ConfigInputs(
            env={"REDIS_GATEWAY_PROFILE": "staging", "REDIS_GATEWAY_REDIS__URL": "redis://r:1"}
        )
    )
    assert loaded.config.profile == "staging"
    assert loaded.provenance["profile"] == "env REDIS_GATEWAY_PROFILE"
    main = write(tmp_path / "gateway.toml", 'profile = "staging"\n[redis]\nurl = "redis://r:1"\n')
    loaded = load_config(ConfigInputs(config_path=main, env={}))
    assert loaded.config.profile == "staging"
    assert load_config(ConfigInputs(env={})).config.profile == "dev"


def test_hash_is_stable_and_sees_secrets() -> None:
    key = b"k" * 32  # the supervisor's fingerprint key (issue 9: keyed secrets)
    a = load_config(ConfigInputs(overrides=(f"auth.jwt_secret={SECRET_A}",), env={}), key)
    b = load_config(ConfigInputs(overrides=(f"auth.jwt_secret={SECRET_A}",), env={}), key)
    c = load_config(ConfigInputs(overrides=(f"auth.jwt_secret={SECRET_B}",), env={}), key)
    assert a.hash == b.hash != c.hash
    assert SECRET_A not in a.hash
