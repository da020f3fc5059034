"""Every error path: all problems at once, each with key, source (file:line), rule, value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import ConfigError, ConfigInputs, load_config

CANARY = "canary-secret-7d1e5b0c93aa41f2-long-enough"


def write(path: Path, data: str | bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    path.chmod(mode)
    return path


def errors(**kwargs: object) -> list[str]:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_config(ConfigInputs(**kwargs))  # type: ignore[arg-type]
    lines = [str(p) for p in info.value.problems]
    assert str(info.value) == "\n".join(lines)
    assert all("\n" not in line for line in lines)
    return lines


def test_missing_main_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gatewya.toml"
    assert errors(config_path=path) == [f"{path}: file not found: {path} (from file {path})"]


def test_missing_main_file_from_env_meta_var(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    found = errors(env={"REDIS_GATEWAY_CONFIG": str(path)})
    assert found[0].startswith(f"{path}: file not found")


def test_bad_toml_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", "[server]\nport = 8080\nhost = \n")
    found = errors(config_path=path)
    assert len(found) == 1
    assert found[0].startswith(f"{path}: invalid TOML")
    assert found[0].endswith(f"(from file {path}:3)")


def test_bad_yaml_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "g.yaml", "server:\n  port: 8080\n   host: [\n")
    found = errors(config_path=path)
    assert "invalid YAML" in found[0]
    assert f"from file {path}:3" in found[0]


def test_bad_json_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "g.json", '{\n  "server": {\n    "port": 80,\n  }\n}\n')
    found = errors(config_path=path)
    assert "invalid JSON" in found[0]
    assert f"from file {path}:4" in found[0]


def test_top_level_must_be_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "g.yaml", "- 1\n- 2\n")
    assert "top level of a YAML document must be a table" in errors(config_path=path)[0]


def test_wrong_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", b"[server]\nhost = '\xff\xfe'\n")
    found = errors(config_path=path)
    assert found == [f"{path}: not UTF-8 text (invalid byte at offset 17) (from file {path})"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", "[server]\n", mode=0o000)
    assert errors(config_path=path) == [
        f"{path}: permission denied reading {path} (from file {path})"
    ]


def test_permission_denied_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root bypasses file modes, so the OS error is injected for this one path.
    path = write(tmp_path / "g.toml", "[server]\n")
    real = os.open

    def open_(file: Any, *args: Any, **kwargs: Any) -> int:
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    assert errors(config_path=path) == [
        f"{path}: permission denied reading {path} (from file {path})"
    ]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert errors(config_path=tmp_path) == [
        f"{tmp_path}: is a directory, not a file: {tmp_path} (from file {tmp_path})"
    ]


def test_invalid_values_name_key_line_rule_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "g.toml",
        "[server]\nhost = '::'\nport = 70000\n\n[observability.logging]\nlevel = 'LOUD'\n",
    )
    found = errors(config_path=path)
    assert found[0] == (
        f"server.port: Input should be less than or equal to 65535 (got 70000; from file {path}:3)"
    )
    assert found[1].startswith("observability.logging.level: Input should be 'DEBUG'")
    assert found[1].endswith(f"(got 'LOUD'; from file {path}:6)")


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", "[server]\nprot = 1\n")
    assert errors(config_path=path) == [
        # The value of an unknown key is never shown (issue 8: `auth.jwt_secrett`).
        f"server.prot: unknown key; did you mean 'port'? (from file {path}:2)"
    ]


def test_yaml_error_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "g.yaml", "server:\n  host: h\n  port: nope\n")
    assert errors(config_path=path)[0].endswith(f"(got 'nope'; from file {path}:3)")


def test_all_problems_from_all_layers_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "g.toml", "[server]\nport = 0\n")
    cm = tmp_path / "cm"
    write(cm / "redis.db", "99")
    found = errors(
        config_path=path,
        configmap_dir=cm,
        overrides=("observability.tracing.sample_rate=2",),
        env={"REDIS_GATEWAY_SERVER__WORKERS": "zero", "REDIS_GATEWAY_NOPE": "1"},
    )
    assert [line.split(":")[0] for line in found] == [
        "server.port",
        "server.workers",
        "redis.db",
        "observability.tracing.sample_rate",
        "nope",
    ]
    assert "from env REDIS_GATEWAY_SERVER__WORKERS" in found[1]
    assert f"from configmap {cm / 'redis.db'}" in found[2]
    assert "from --set observability.tracing.sample_rate" in found[3]


def test_env_list_must_be_json() -> None:
    found = errors(env={"REDIS_GATEWAY_SERVER__CORS__ALLOWED_ORIGINS": "[https://a.example"})
    assert found[0].startswith("server.cors.allowed_origins: not valid JSON")
    assert "from env REDIS_GATEWAY_SERVER__CORS__ALLOWED_ORIGINS" in found[0]
    found = errors(env={"REDIS_GATEWAY_SERVER__CORS__ALLOWED_ORIGINS": "https://a.example"})
    assert found[0].startswith("server.cors.allowed_origins: Input should be a valid list")


def test_malformed_env_name_and_set() -> None:
    found = errors(env={"REDIS_GATEWAY_SERVER__": "1"}, overrides=("server.port",))
    assert found[0].startswith("REDIS_GATEWAY_SERVER__: malformed variable name")
    assert found[1].startswith("server.port: expected --set KEY=VALUE")


def test_missing_directories(tmp_path: Path) -> None:
    file = write(tmp_path / "f", "x")
    found = errors(configmap_dir=tmp_path / "absent", secrets_dir=file)
    assert found == [
        f"{tmp_path / 'absent'}: directory not found (from configmap dir {tmp_path / 'absent'})",
        f"{file}: not a directory (from secrets dir {file})",
    ]


def test_missing_indirect_secret_file(tmp_path: Path) -> None:
    found = errors(env={"REDIS_GATEWAY_AUTH__JWT_SECRET_FILE": str(tmp_path / "jwt")})
    assert found == [
        f"auth.jwt_secret_file: file not found: {tmp_path / 'jwt'} "
        "(from env REDIS_GATEWAY_AUTH__JWT_SECRET_FILE)"
    ]


def test_secret_values_never_in_errors(tmp_path: Path) -> None:
    sec = tmp_path / "sec"
    # A secret that fails validation wherever it comes from: never echoed.
    write(sec / "redis.db", CANARY)
    write(sec / "auth.api_keys", "[" + CANARY)
    found = errors(
        secrets_dir=sec,
        profile="prod",
        overrides=(f"auth.jwt_secret={CANARY[:10]}", f"redis.url=http://:{CANARY}@h"),
        env={"REDIS_GATEWAY_REDIS__DEFAULT_PASSWORD": "[" + CANARY},
    )
    text = "\n".join(found)
    assert CANARY[:10] not in text
    assert "redis.db:" in text and "value hidden: secret" in text
    assert "redis.url:" in text


def test_secret_file_readable_by_others_warns(tmp_path: Path) -> None:
    sec = tmp_path / "sec"
    write(sec / "auth.jwt_secret", CANARY, mode=0o644)
    loaded = load_config(ConfigInputs(secrets_dir=sec, env={}))
    assert len(loaded.warnings) == 1
    assert "accessible by group/others (mode 0644)" in loaded.warnings[0]
    assert CANARY not in loaded.warnings[0]
    (sec / "auth.jwt_secret").chmod(0o600)
    assert load_config(ConfigInputs(secrets_dir=sec, env={})).warnings == ()


def test_error_in_second_array_table_entry_points_at_it(tmp_path: Path) -> None:
    path = write(
        tmp_path / "g.toml",
        (
            '[[auth.api_keys]]\nname = "a"\nkey = "0123456789abcdef"\n\n'
            '[[auth.api_keys]]\nname = "b c"\nkey = "0123456789abcdef"\n'
        ),
    )
    found = errors(config_path=path)
    assert len(found) == 1
    assert found[0].startswith("auth.api_keys.1.name: String should match pattern")
    assert found[0].endswith(f"(got 'b c'; from file {path}:6)")


def test_yaml_list_item_error_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "g.yaml",
        (
            "auth:\n  api_keys:\n    - name: a\n      key: '0123456789abcdef'\n"
            "    - name: b\n      key: '0123456789abcdef'\n      policy: everything\n"
        ),
    )
    found = errors(config_path=path)
    assert found[0].startswith("auth.api_keys.1.policy:")
    assert found[0].endswith(f"from file {path}:7)")
