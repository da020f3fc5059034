"""`redis-gateway config validate|show|schema`, in-process (CliRunner) and as a real process.

A canary secret goes in through every secret-bearing input and must never come out
of any command, valid config or not, on stdout or stderr, nor in a log record.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from supervisor.cli import main
from supervisor.config import ConfigError, ConfigInputs, load_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "redis-gateway"
CANARY = "CANARY-9c4e1f7a2b8d-secret-value-xyz"
CANARY_PW = "CANARYPW-51d0e7"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name in list(os.environ):
        if name.startswith("REDIS_GATEWAY_"):
            monkeypatch.delenv(name)
    yield {k: v for k, v in os.environ.items() if not k.startswith("REDIS_GATEWAY_")}


def run_cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def run_exe(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(EXE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_validate_ok_prints_profile_and_hash(clean_env: dict[str, str], tmp_path: Path) -> None:
    main_file = write(tmp_path / "gateway.toml", "[server]\nport = 8100\n")
    code, out, err = run_cli(["config", "validate", "-c", str(main_file)])
    assert code == 0, err
    loaded = load_config(ConfigInputs(config_path=main_file, env={}))
    assert out == f"configuration valid: profile=dev hash={loaded.hash}\n"


def test_validate_broken_file_lists_every_problem(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    main_file = write(tmp_path / "gateway.toml", "[server]\nport = 70000\nprot = 1\n")
    code, out, err = run_cli(["config", "validate", "-c", str(main_file), "--set", "redis.db=99"])
    assert code == 1
    assert out == ""
    assert "configuration invalid: 3 problem(s)" in err
    assert f"(got 70000; from file {main_file}:2)" in err
    # An unknown key's value is never shown (issue 8).
    assert f"did you mean 'port'? (from file {main_file}:3)" in err
    assert (
        "redis.db: Input should be less than or equal to 15 (got '99'; from --set redis.db)" in err
    )
    assert "Traceback" not in err


def test_validate_syntax_error_and_missing_file(clean_env: dict[str, str], tmp_path: Path) -> None:
    bad = write(tmp_path / "gateway.toml", "[server\nport = 1\n")
    code, _, err = run_cli(["config", "validate", "-c", str(bad)])
    assert code == 1 and "invalid TOML" in err and f"from file {bad}:1)" in err
    code, _, err = run_cli(["config", "validate", "-c", str(tmp_path / "typo.toml")])
    assert code == 1 and "file not found" in err


def test_show_sources_reports_env_override(clean_env: dict[str, str], tmp_path: Path) -> None:
    main_file = write(tmp_path / "gateway.toml", "[server]\nport = 8100\nworkers = 3\n")
    env = {"REDIS_GATEWAY_SERVER__PORT": "9000", "REDIS_GATEWAY_CONFIG": str(main_file)}
    code, out, err = run_cli(["config", "show", "--sources"], env=env)
    assert code == 0, err
    assert "server.port = 9000  # env REDIS_GATEWAY_SERVER__PORT\n" in out
    assert f"server.workers = 3  # file {main_file}:3\n" in out
    assert 'server.host = "127.0.0.1"  # default for the dev profile\n' in out
    assert "server.max_connections = 1000  # default\n" in out


def test_show_formats_parse(clean_env: dict[str, str]) -> None:
    code, out, _ = run_cli(["config", "show", "--set", "server.port=8200"])
    assert code == 0
    assert tomllib.loads(out)["server"]["port"] == 8200
    code, out, _ = run_cli(["config", "show", "--format", "json", "--set", "server.port=8200"])
    assert json.loads(out)["server"]["port"] == 8200
    code, out, _ = run_cli(["config", "show", "--format", "json", "--sources"])
    assert json.loads(out)["server.port"] == {"value": 8080, "source": "default"}


def test_show_toml_with_api_keys_and_unset_values(clean_env: dict[str, str]) -> None:
    keys = '[{"name": "ci", "key": "0123456789abcdef", "admin": true}]'
    code, out, err = run_cli(["config", "show", "--set", f"auth.api_keys={keys}"])
    assert code == 0, err
    shown = tomllib.loads(out)
    assert shown["auth"]["api_keys"] == [
        {"name": "ci", "key": "**********", "admin": True, "policy": "all_but_dangerous"}
    ]
    assert "url" not in shown["redis"]  # unset: absent, TOML has no null


def test_schema_outputs(clean_env: dict[str, str]) -> None:
    code, out, _ = run_cli(["config", "schema"])
    assert code == 0
    assert "server" in json.loads(out)["properties"]
    code, out, _ = run_cli(["config", "schema", "--format", "markdown"])
    assert out == (ROOT / "docs" / "configuration.md").read_text()


def _canary_inputs(tmp_path: Path) -> list[tuple[list[str], dict[str, str]]]:
    """(args, env) combinations that each carry the canary through a different input."""
    secrets = tmp_path / "secrets"
    write(secrets / "auth.jwt_secret", CANARY, mode=0o644)
    write(secrets / "redis.url", f"redis://:{CANARY_PW}@127.0.0.1:1")
    target = write(tmp_path / "pw", CANARY)
    main_file = write(
        tmp_path / "gateway.toml",
        f'[redis]\ndefault_password_file = "{target}"\nurl = "redis://r:1"\n',
    )
    broken = write(
        tmp_path / "broken.toml",
        f'[auth]\njwt_secret = "{CANARY[:12]}"\n[[auth.api_keys]]\nname = "x"\n'
        f'key = "{CANARY[:9]}"\n[redis]\nurl = "http://u:{CANARY_PW}@h"\n',
    )
    return [
        (["-c", str(main_file), "--secrets-dir", str(secrets)], {}),
        (
            ["-c", str(main_file), "--profile", "prod"],
            {"REDIS_GATEWAY_AUTH__JWT_SECRET": CANARY, "REDIS_GATEWAY_AUTH__ENABLED": "true"},
        ),
        (["--set", f"auth.jwt_secret={CANARY}", "--set", f"redis.default_password={CANARY}"], {}),
        (["-c", str(broken), "--profile", "prod"], {}),
        (
            ["--profile", "staging", "--set", f"auth.jwt_secret={CANARY[:20]}"],
            {"REDIS_GATEWAY_SECRETS_DIR": str(secrets)},
        ),
        (
            [
                "--set",
                f'auth.api_keys=[{{"name": "a", "key": "{CANARY}"}}]',
                "--set",
                "server.port=0",
            ],
            {},
        ),
    ]


_COMMANDS = [
    ["config", "validate"],
    ["config", "show"],
    ["config", "show", "--sources"],
    ["config", "show", "--format", "json", "--sources"],
]


def test_canary_never_in_cli_output_in_process(
    clean_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes = set()
    for args, env in _canary_inputs(tmp_path):
        for command in _COMMANDS:
            code, out, err = run_cli([*command, *args], env=env)
            outcomes.add(code)
            assert CANARY[:9] not in out + err, (command, args)
            assert CANARY_PW not in out + err, (command, args)
    assert outcomes == {0, 1}  # both valid and invalid configurations were exercised
    assert CANARY[:9] not in caplog.text


def test_canary_never_in_cli_output_subprocess(clean_env: dict[str, str], tmp_path: Path) -> None:
    outcomes = set()
    for args, env in _canary_inputs(tmp_path):
        for command in (_COMMANDS[0], _COMMANDS[2]):
            code, out, err = run_exe([*command, *args], {**clean_env, **env})
            outcomes.add(code)
            assert "Traceback" not in err
            assert CANARY[:9] not in out + err, (command, args)
            assert CANARY_PW not in out + err, (command, args)
    assert outcomes == {0, 1}


def test_canary_never_in_config_error_or_repr(tmp_path: Path) -> None:
    for args, env in _canary_inputs(tmp_path):
        try:
            loaded = load_config(
                ConfigInputs(
                    config_path=Path(args[1]) if args[0] == "-c" else None,
                    overrides=tuple(a for a in args if "=" in a),
                    profile=args[args.index("--profile") + 1] if "--profile" in args else None,
                    secrets_dir=Path(env["REDIS_GATEWAY_SECRETS_DIR"])
                    if "REDIS_GATEWAY_SECRETS_DIR" in env
                    else None,
                    env=env,
                )
            )
        except ConfigError as exc:
            assert CANARY[:9] not in str(exc) + repr(exc.problems)
        else:
            assert CANARY[:9] not in repr(loaded) + str(loaded.provenance) + str(loaded.warnings)
