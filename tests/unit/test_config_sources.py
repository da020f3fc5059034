"""Sources read the way operators provide them: env lists, Kubernetes mounts, fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.config import ConfigInputs, fingerprint_inputs, load_config

SECRET = "k8s-secret-value-0123456789abcdef-xyz"


def kubernetes_mount(root: Path, files: dict[str, str], stamp: str) -> Path:
    """Lay out `root` exactly as kubelet does: ..<timestamp>/, ..data -> it, key -> ..data/key."""
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / f"..{stamp}"
    data_dir.mkdir()
    for name, text in files.items():
        (data_dir / name).write_text(text)
        (data_dir / name).chmod(0o600)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(data_dir.name)
    os.replace(tmp_link, root / "..data")  # the atomic step kubelet performs
    for name in files:
        key = root / name
        if not key.is_symlink():
            key.symlink_to(Path("..data") / name)
    return root


def test_env_lists_are_json() -> None:
    loaded = load_config(
        ConfigInputs(
            env={
                "REDIS_GATEWAY_SERVER__CORS__ALLOWED_ORIGINS": '["https://a.example", "https://b.example"]',
                "REDIS_GATEWAY_POLICY__DENIED_COMMANDS": '["flushall"]',
                "REDIS_GATEWAY_AUTH__API_KEYS": '[{"name": "ci", "key": "0123456789abcdef"}]',
                "UNRELATED": "ignored",
            }
        )
    )
    assert loaded.config.server.cors.allowed_origins == ["https://a.example", "https://b.example"]
    assert loaded.config.policy.denied_commands == ["FLUSHALL"]
    assert loaded.config.auth.api_keys[0].name == "ci"
    assert loaded.provenance["policy.denied_commands"] == (
        "env REDIS_GATEWAY_POLICY__DENIED_COMMANDS"
    )


def test_env_scalars_are_coerced_and_meta_vars_are_not_keys(tmp_path: Path) -> None:
    loaded = load_config(
        ConfigInputs(
            env={
                "REDIS_GATEWAY_SERVER__PORT": " 9001 ",
                "REDIS_GATEWAY_SERVER__CORS__ENABLED": "true",
                "REDIS_GATEWAY_OBSERVABILITY__TRACING__SAMPLE_RATE": "0.5",
                "REDIS_GATEWAY_REDIS__USERNAME": '"null"',
                "REDIS_GATEWAY_CONFIGMAP_DIR": str(tmp_path),
            }
        )
    )
    assert loaded.config.server.port == 9001
    assert loaded.config.server.cors.enabled is True
    assert loaded.config.observability.tracing.sample_rate == 0.5
    assert loaded.config.redis.username == "null"
    assert tmp_path in loaded.watched_paths


def test_set_values_json_or_string() -> None:
    loaded = load_config(
        ConfigInputs(
            overrides=(
                'server.cors.allowed_methods=["get","post"]',
                "server.host=::1",
                "auth.jwt_secret=[not json but a secret",
                "redis.url=null",
                "observability.logging.output=a=b",
            ),
            env={},
        )
    )
    assert loaded.config.server.cors.allowed_methods == ["GET", "POST"]
    assert loaded.config.server.host == "::1"
    assert loaded.config.auth.jwt_secret is not None
    assert loaded.config.auth.jwt_secret.get_secret_value() == "[not json but a secret"
    assert loaded.config.redis.url is None
    assert loaded.config.observability.logging.output == "a=b"


def test_kubernetes_configmap_layout(tmp_path: Path) -> None:
    cm = kubernetes_mount(
        tmp_path / "cm",
        {
            "gateway.toml": "[server]\nport = 8100\nworkers = 2\n",
            "server.port": "8200",
            "server__cors__enabled": "true\n",
        },
        "2026_11_26_07_00_00.123456789",
    )
    loaded = load_config(ConfigInputs(configmap_dir=cm, env={}))
    # The single key wins over the whole-document key in the same ConfigMap.
    assert loaded.config.server.port == 8200
    assert loaded.config.server.workers == 2
    assert loaded.config.server.cors.enabled is True
    assert loaded.provenance["server.workers"] == f"configmap {cm / 'gateway.toml'}:3"
    assert loaded.provenance["server.port"] == f"configmap {cm / 'server.port'}"
    assert cm in loaded.watched_paths


def test_kubernetes_secret_layout_and_update(tmp_path: Path) -> None:
    sec = kubernetes_mount(
        tmp_path / "sec", {"auth.jwt_secret": SECRET + "\n"}, "2026_11_26_07_00_00.000000001"
    )
    inputs = ConfigInputs(secrets_dir=sec, env={})
    loaded = load_config(inputs)
    assert loaded.config.auth.jwt_secret is not None
    assert loaded.config.auth.jwt_secret.get_secret_value() == SECRET
    assert loaded.warnings == ()
    before = fingerprint_inputs(inputs)
    assert fingerprint_inputs(inputs) == before
    # kubelet's update: a new timestamped dir, ..data swapped atomically; key symlinks stay.
    new_dir = sec / "..2026_11_26_07_05_00.000000002"
    new_dir.mkdir()
    (new_dir / "auth.jwt_secret").write_text(SECRET + "-rotated")
    (new_dir / "auth.jwt_secret").chmod(0o600)
    (sec / "..data_tmp").symlink_to(new_dir.name)
    os.replace(sec / "..data_tmp", sec / "..data")
    assert fingerprint_inputs(inputs) != before
    rotated = load_config(inputs)
    assert rotated.config.auth.jwt_secret is not None
    assert rotated.config.auth.jwt_secret.get_secret_value() == SECRET + "-rotated"
    assert rotated.hash != loaded.hash


def test_fingerprint_changes_with_every_input(tmp_path: Path) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text("[server]\nport = 8100\n")
    target = tmp_path / "jwt"
    target.write_text(SECRET)
    env = {"REDIS_GATEWAY_AUTH__JWT_SECRET_FILE": str(target)}
    inputs = ConfigInputs(config_path=main, env=env)
    seen = {fingerprint_inputs(inputs)}
    main.write_text("[server]\nport = 8101\n")
    seen.add(fingerprint_inputs(inputs))
    target.write_text(SECRET + "2")
    seen.add(fingerprint_inputs(inputs))
    (tmp_path / "gateway.dev.toml").write_text("[server]\nport = 8102\n")
    seen.add(fingerprint_inputs(inputs))
    more_env = {**env, "REDIS_GATEWAY_X": "1"}
    seen.add(fingerprint_inputs(ConfigInputs(config_path=main, env=more_env)))
    seen.add(fingerprint_inputs(ConfigInputs(config_path=main, env=env, overrides=("a=1",))))
    assert len(seen) == 6
    main.unlink()
    assert fingerprint_inputs(inputs) not in seen  # never raises, even for a missing file


def test_watched_paths_cover_every_input(tmp_path: Path) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text("[server]\nworkers = 1\n")
    overlay = tmp_path / "gateway.dev.yaml"
    overlay.write_text("server:\n  port: 8100\n")
    cm, sec = tmp_path / "cm", tmp_path / "sec"
    cm.mkdir()
    sec.mkdir()
    target = tmp_path / "pw"
    target.write_text("pw")
    target.chmod(0o600)
    loaded = load_config(
        ConfigInputs(
            config_path=main,
            configmap_dir=cm,
            secrets_dir=sec,
            overrides=(f"redis.default_password_file={target}",),
            env={},
        )
    )
    assert set(loaded.watched_paths) == {main, overlay, cm, sec, target}


def test_dot_entries_and_subdirectories_are_skipped(tmp_path: Path) -> None:
    cm = tmp_path / "cm"
    (cm / ".hidden").mkdir(parents=True)
    (cm / ".server.port").write_text("1")
    (cm / "nested").mkdir()
    loaded = load_config(ConfigInputs(configmap_dir=cm, env={}))
    assert loaded.config.server.port == 8080
    assert loaded.warnings == (f"configmap dir {cm}: ignored sub-directory 'nested'",)


def test_fingerprint_sees_a_renamed_key(tmp_path: Path) -> None:
    cm = tmp_path / "cm"
    cm.mkdir()
    (cm / "server.workers").write_text("2")
    inputs = ConfigInputs(configmap_dir=cm, env={})
    before = fingerprint_inputs(inputs)
    (cm / "server.workers").rename(cm / "redis.pool_max_size")
    assert fingerprint_inputs(inputs) != before
