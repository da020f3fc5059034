"""The shared click options produce the ConfigInputs other commands (run) rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

import click
from click.testing import CliRunner

from supervisor.config import ConfigInputs
from supervisor.config.cli import ConfigOptions, config_options, inputs_from_options


def capture(args: list[str], env: dict[str, str] | None = None) -> tuple[int, ConfigInputs | None]:
    seen: list[ConfigInputs] = []

    @click.command()
    @config_options
    @click.option("--other", default="x")
    def command(other: str, **options: Unpack[ConfigOptions]) -> None:
        assert other == "x"
        seen.append(inputs_from_options(**options))

    result = CliRunner().invoke(command, args, env=env)
    return result.exit_code, (seen[0] if seen else None)


def test_options_map_to_inputs() -> None:
    code, inputs = capture(
        [
            "-c",
            "g.toml",
            "--profile",
            "prod",
            "--set",
            "a.b=1",
            "--set",
            "c=2",
            "--configmap-dir",
            "/cm",
            "--secrets-dir",
            "/sec",
        ]
    )
    assert code == 0 and inputs is not None
    assert inputs.config_path == Path("g.toml")
    assert inputs.profile == "prod"
    assert inputs.overrides == ("a.b=1", "c=2")
    assert inputs.configmap_dir == Path("/cm")
    assert inputs.secrets_dir == Path("/sec")


def test_options_from_env_meta_vars() -> None:
    code, inputs = capture(
        [],
        env={
            "REDIS_GATEWAY_CONFIG": "/etc/g.yaml",
            "REDIS_GATEWAY_PROFILE": "staging",
            "REDIS_GATEWAY_CONFIGMAP_DIR": "/cm",
            "REDIS_GATEWAY_SECRETS_DIR": "/sec",
            "REDIS_GATEWAY_SERVER__PORT": "9000",
        },
    )
    assert code == 0 and inputs is not None
    assert (inputs.config_path, inputs.profile) == (Path("/etc/g.yaml"), "staging")
    assert (inputs.configmap_dir, inputs.secrets_dir) == (Path("/cm"), Path("/sec"))
    assert inputs.env["REDIS_GATEWAY_SERVER__PORT"] == "9000"


def test_unknown_profile_is_a_usage_error() -> None:
    code, inputs = capture(["--profile", "production"])
    assert code == 2 and inputs is None
