"""deploy/kubernetes: the manifests agree with each other and with the real config loader."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.config.loader import ConfigInputs, load_config

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
README = MANIFESTS / "README.md"


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


def readme_create_secret() -> str:
    """The README's `kubectl ... create secret generic` command, continuations joined."""
    text = README.read_text()
    start = text.index("kubectl -n redis-gateway create secret generic")
    lines = []
    for line in text[start:].splitlines():
        lines.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return " ".join(lines)


def readme_secret() -> tuple[str, list[str]]:
    """The Secret's name and keys as the README creates it."""
    command = readme_create_secret()
    name = command.split("create secret generic", 1)[1].split()[0]
    return name, re.findall(r"--from-literal=([\w.]+)=", command)


def strong_secrets() -> dict[str, str]:
    """The README's keys with values like `openssl rand -base64 48` makes."""
    return {key: base64.b64encode(secrets.token_bytes(48)).decode() for key in readme_secret()[1]}


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
    assert volumes["secrets"]["secret"]["secretName"] == readme_secret()[0]
    control_socket = Path(env["REDIS_GATEWAY_SUPERVISOR__CONTROL_SOCKET"])
    assert str(control_socket.parent) == mounts["run"]["mountPath"]


def test_termination_grace_covers_the_drain(tmp_path: Path) -> None:
    loaded = _load_manifest_config(tmp_path)
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = loaded.server.graceful_shutdown_timeout_seconds
    assert pod["terminationGracePeriodSeconds"] > graceful + pre_stop


def _load_manifest_config(tmp_path: Path, secret: dict[str, str] | None = None) -> Any:
    configmap = kubelet_mount(tmp_path / "config", load("configmap.yaml")["data"])
    mounted = kubelet_mount(tmp_path / "secrets", secret or strong_secrets())
    args = container()["args"]
    profile = args[args.index("--profile") + 1]
    loaded = load_config(
        ConfigInputs(profile=profile, configmap_dir=configmap, secrets_dir=mounted, env={})
    )
    return loaded.config


def test_no_secret_in_the_kustomization_and_the_readme_creates_it() -> None:
    # `kubectl apply -k` must never overwrite the real Secret with placeholders.
    kustomization = load("kustomization.yaml")
    assert not list(MANIFESTS.glob("secret*.yaml"))
    assert "secretGenerator" not in kustomization
    assert "components" not in kustomization  # the API source is opt-in
    assert set(kustomization["resources"]) == {
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    }
    name, keys = readme_secret()
    assert name == "redis-gateway-secrets"
    assert keys == ["auth.jwt_secret", "redis.default_password"]
    assert "$(openssl rand" in readme_create_secret()


def test_prod_refuses_placeholder_secrets_from_the_mount(tmp_path: Path) -> None:
    from supervisor.config import ConfigError

    placeholders = dict.fromkeys(readme_secret()[1], "REPLACE-ME")
    with pytest.raises(ConfigError) as caught:
        _load_manifest_config(tmp_path, placeholders)
    assert sorted(
        p.split(":")[0] for p in caught.value.problems if "not be a placeholder" in p
    ) == [
        "auth.jwt_secret",
        "redis.default_password",
    ]


@pytest.mark.skipif(
    shutil.which("kubectl") is None or shutil.which("openssl") is None,
    reason="kubectl or openssl not found",
)
def test_readme_secret_command_makes_a_secret_prod_accepts(tmp_path: Path) -> None:
    # Offline: --dry-run=client prints the Secret the command would create.
    result = subprocess.run(
        ["bash", "-c", readme_create_secret() + " --dry-run=client -o yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    secret = yaml.safe_load(result.stdout)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    config = _load_manifest_config(tmp_path, data)
    assert config.auth.jwt_secret.get_secret_value() == data["auth.jwt_secret"]
    assert config.redis.default_password is not None


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
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]


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


def load_all(name: str) -> dict[str, dict[str, Any]]:
    """The documents of a multi-document manifest, by kind."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text())}


def test_api_source_rbac_reads_only_the_two_objects() -> None:
    rbac = load_all("api-source/rbac.yaml")
    rules = {r["resources"][0]: r for r in rbac["Role"]["rules"]}
    assert rules["configmaps"]["resourceNames"] == [load("configmap.yaml")["metadata"]["name"]]
    assert rules["secrets"]["resourceNames"] == [readme_secret()[0]]
    for rule in rules.values():
        assert rule["apiGroups"] == [""] and rule["verbs"] == ["get", "list", "watch"]
    binding = rbac["RoleBinding"]
    assert binding["roleRef"]["name"] == rbac["Role"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": rbac["ServiceAccount"]["metadata"]["name"]}
    ]
    patch = load("api-source/deployment-patch.yaml")["spec"]["template"]["spec"]
    assert patch["serviceAccountName"] == rbac["ServiceAccount"]["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in patch["containers"][0]["env"]}
    assert env["REDIS_GATEWAY_KUBERNETES__CONFIGMAP"] == rules["configmaps"]["resourceNames"][0]
    assert env["REDIS_GATEWAY_KUBERNETES__SECRET"] == rules["secrets"]["resourceNames"][0]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not found")
def test_api_source_component_replaces_the_volumes(tmp_path: Path) -> None:
    from supervisor.config import ConfigInputs, peek_section

    base = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, base)
    kustomization = base / "kustomization.yaml"
    text = kustomization.read_text()
    assert "# components:\n#   - api-source\n" in text  # how README/docs say to turn it on
    kustomization.write_text(
        text.replace("# components:\n#   - api-source\n", "components:\n  - api-source\n")
    )
    result = subprocess.run(
        ["kubectl", "kustomize", str(base)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(result.stdout)}
    assert {"ServiceAccount", "Role", "RoleBinding"} <= set(docs)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    # A mounted directory would win over the API source: both are gone.
    assert {"REDIS_GATEWAY_CONFIGMAP_DIR", "REDIS_GATEWAY_SECRETS_DIR"}.isdisjoint(env)
    assert {v["name"] for v in pod["volumes"]} == {"run", "state", "tmp"}
    assert {m["mountPath"] for m in c["volumeMounts"]} == {
        "/run/redis-gateway",
        "/var/lib/redis-gateway",
        "/tmp",
    }
    peeked = peek_section(ConfigInputs(env=env), "kubernetes")
    assert peeked is not None and peeked.kubernetes.enabled
    assert (peeked.kubernetes.configmap, peeked.kubernetes.secret) == (
        load("configmap.yaml")["metadata"]["name"],
        readme_secret()[0],
    )


def test_example_redis_is_what_redis_url_names(tmp_path: Path) -> None:
    config = _load_manifest_config(tmp_path)
    redis = load_all("redis.yaml")
    url = config.redis.url
    assert url == f"redis://{redis['Service']['metadata']['name']}:6379"
    assert [p["port"] for p in redis["Service"]["spec"]["ports"]] == [6379]
    (c,) = redis["Deployment"]["spec"]["template"]["spec"]["containers"]
    ref = c["env"][0]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (readme_secret()[0], "redis.default_password")
    assert redis["Service"]["spec"]["selector"].items() <= (
        redis["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )


def test_alerts_cover_reload_failures_rejected_drift_and_state_writes() -> None:
    from supervisor.metrics import DRIFT_STATES

    rules = {r["alert"]: r for r in load("prometheus-rules.yaml")["spec"]["groups"][0]["rules"]}
    assert rules["RedisGatewayReloadFailing"]["expr"] == "redis_gateway_last_reload_successful == 0"
    rejected = rules["RedisGatewayConfigRejected"]
    assert rejected["expr"] == 'redis_gateway_config_drift{state="rejected"} == 1'
    assert rejected["for"] == "10m" and "rejected" in DRIFT_STATES
    assert rules["RedisGatewayStateWritesFailing"]["expr"] == "redis_gateway_state_write_ok == 0"
