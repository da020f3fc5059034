"""deploy/kubernetes: the manifests agree with each other and with the real config loader."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.config.loader import ConfigInputs, load_config

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((MANIFESTS / name).read_text())
    assert isinstance(doc, dict)
    return doc


def container() -> dict[str, Any]:
    containers = load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


def kubelet_mount(target: Path, data: dict[str, str]) -> Path:
    """Materialise a ConfigMap/Secret the way kubelet does (`..data` + key symlinks)."""
    target.mkdir()
    stamped = target / "..2026_11_26_07_00_00.000000001"
    stamped.mkdir()
    for key, value in data.items():
        (stamped / key).write_text(value)
        os.chmod(stamped / key, 0o400)
        (target / key).symlink_to(Path("..data") / key)
    (target / "..data").symlink_to(stamped.name)
    return target


def test_probes_point_at_healthz_and_readyz() -> None:
    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_config_and_secret_are_mounted_as_directories_named_in_env() -> None:
    deployment = load("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    c = container()
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in mounts.values():
        # subPath mounts are never updated by kubelet: hot reload would silently stop.
        assert "subPath" not in mount, mount
    env = env_of(c)
    assert env["REDIS_GATEWAY_CONFIGMAP_DIR"] == mounts["config"]["mountPath"]
    assert env["REDIS_GATEWAY_SECRETS_DIR"] == mounts["secrets"]["mountPath"]
    assert volumes["config"]["configMap"]["name"] == load("configmap.yaml")["metadata"]["name"]
    assert volumes["secrets"]["secret"]["secretName"] == load("secret.yaml")["metadata"]["name"]
    control_socket = Path(env["REDIS_GATEWAY_SUPERVISOR__CONTROL_SOCKET"])
    assert str(control_socket.parent) == mounts["run"]["mountPath"]


def test_termination_grace_covers_the_drain(tmp_path: Path) -> None:
    loaded = _load_manifest_config(tmp_path)
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = loaded.server.graceful_shutdown_timeout_seconds
    assert pod["terminationGracePeriodSeconds"] > graceful + pre_stop


def _load_manifest_config(tmp_path: Path) -> Any:
    configmap = kubelet_mount(tmp_path / "config", load("configmap.yaml")["data"])
    secrets = kubelet_mount(tmp_path / "secrets", load("secret.yaml")["stringData"])
    command = container()["command"]
    profile = command[command.index("--profile") + 1]
    loaded = load_config(
        ConfigInputs(profile=profile, configmap_dir=configmap, secrets_dir=secrets, env={})
    )
    return loaded.config


def test_manifest_config_validates_in_prod_and_matches_ports(tmp_path: Path) -> None:
    config = _load_manifest_config(tmp_path)
    assert config.profile == "prod"
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert config.server.port == ports["http"]
    assert config.observability.metrics.port == ports["metrics"]
    assert config.observability.metrics.host == "0.0.0.0"
    assert config.auth.jwt_secret is not None
    assert config.server.workers == 2
    service_ports = {p["name"]: p["targetPort"] for p in load("service.yaml")["spec"]["ports"]}
    assert set(service_ports.values()) <= set(ports)


def test_pdb_and_service_select_the_deployment_pods() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    for name in ("service.yaml", "pdb.yaml"):
        spec = load(name)["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not found")
def test_kustomization_builds_every_manifest() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"]


def test_alert_rules_use_metrics_the_supervisor_exports() -> None:
    from prometheus_client import CollectorRegistry

    from supervisor.metrics import SupervisorMetrics

    registry = CollectorRegistry()
    metrics = SupervisorMetrics(registry, process_metrics=False)
    metrics.set_config(version=1, config_hash="abc", profile="prod")  # labelled series
    metrics.set_workers({"ready": 2})
    exported = {s.name for family in registry.collect() for s in family.samples}
    rules = load("prometheus-rules.yaml")["spec"]["groups"][0]["rules"]
    assert rules
    for rule in rules:
        names = set(re.findall(r"redis_gateway_[a-z_]+", rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)
