"""The `kubernetes` config section and `run`'s wiring of the API source
(supervisor/kubernetes/wiring.py), against the local fake API server (tests/kube_api.py:
no cluster exists here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from gateway_worker.config import Config, KubernetesConfig
from supervisor.config import ConfigError, ConfigInputs, Problem, load_config, peek_section
from supervisor.kubernetes import KubernetesSettings, SettingsError
from supervisor.kubernetes.wiring import SyncError, runtime_parent, start_if_enabled
from supervisor.reload.drift import DriftState, compare
from tests.helpers import free_port
from tests.kube_api import FakeKubeApi
from tests.kube_support import CM, JWT, NS, SEC, TOKEN, Logs

SECTION = {"enabled": True, "namespace": NS, "configmap": CM, "secret": SEC}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def toml_section(values: dict[str, object]) -> str:
    body = "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n".replace("'", '"')
        for k, v in values.items()
    )
    return f"[kubernetes]\n{body}"


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"enabled": True}, "needs kubernetes.configmap, kubernetes.secret or both"),
        ({"configmap": "Bad_Name"}, "not a valid Kubernetes name"),
        ({"secret": "../etc"}, "not a valid Kubernetes name"),
        ({"namespace": "a.b"}, "not a valid Kubernetes name"),  # a label: no dots
        ({"configmap": "x" * 254}, "at most 253 characters"),
        ({"api_url": "ftp://api"}, r"must be http\(s\)://host\[:port\]"),
        ({"api_url": "https://u:p@api:443"}, "must not carry a query, a fragment or credentials"),
        ({"timeout_seconds": 0}, "greater than 0"),
        ({"backoff_initial_seconds": 5, "backoff_max_seconds": 1}, "must not exceed"),
    ],
)
def test_section_refuses(values: dict[str, object], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        KubernetesConfig.model_validate(values)


def test_section_defaults_are_off_and_in_cluster() -> None:
    section = Config().kubernetes
    assert section.enabled is False
    assert section.token_path == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert KubernetesConfig.model_validate(SECTION).configmap == CM


def test_settings_come_from_the_section_and_obey_its_rules() -> None:
    section = KubernetesConfig.model_validate(
        {**SECTION, "token_path": "", "ca_path": "/ca.pem", "watch_timeout_seconds": 7}
    )
    settings = KubernetesSettings.from_config(section)
    assert settings.token_path is None  # empty: no token (kubectl proxy)
    assert settings.ca_path == Path("/ca.pem")
    assert (settings.configmap, settings.secret, settings.watch_timeout_seconds) == (CM, SEC, 7)
    assert settings.section().model_dump() == section.model_dump()
    # One home: the settings are refused by the section's own rule and message.
    with pytest.raises(SettingsError, match=r"kubernetes\.configmap: 'Bad_Name' is not a valid"):
        KubernetesSettings(configmap="Bad_Name")


def test_kubernetes_section_is_refused_in_the_directories(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", toml_section({"enabled": False}))
    cm = tmp_path / "cm"
    write(cm / "kubernetes.configmap", "other")
    secrets = tmp_path / "sec"
    write(secrets / "extra.toml", '[kubernetes]\napi_url = "http://x:1"\n')
    inputs = ConfigInputs(config_path=main, configmap_dir=cm, secrets_dir=secrets, env={})
    with pytest.raises(ConfigError) as caught:
        load_config(inputs)
    problems = {p.key: p for p in caught.value.problems if isinstance(p, Problem)}
    assert set(problems) == {"kubernetes.configmap", "kubernetes.api_url"}
    assert problems["kubernetes.configmap"].source == f"configmap {cm / 'kubernetes.configmap'}"
    assert "read before the ConfigMap and secrets directories" in str(
        problems["kubernetes.api_url"]
    )
    # Env and --set may set it (they are read before the directories are filled).
    env = {"REDIS_GATEWAY_KUBERNETES__NAMESPACE": NS}
    loaded = load_config(
        ConfigInputs(config_path=main, overrides=(f"kubernetes.secret={SEC}",), env=env)
    )
    assert (loaded.config.kubernetes.namespace, loaded.config.kubernetes.secret) == (NS, SEC)


def test_peek_reads_the_section_before_the_rest_is_valid(tmp_path: Path) -> None:
    # prod with auth on and no credential yet: invalid until the Secret is mirrored.
    main = write(
        tmp_path / "gateway.toml",
        'profile = "prod"\n[auth]\nenabled = true\n' + toml_section(SECTION),
    )
    inputs = ConfigInputs(config_path=main, env={})
    with pytest.raises(ConfigError):
        load_config(inputs)
    peeked = peek_section(inputs, "kubernetes")
    assert peeked is not None and peeked.kubernetes.secret == SEC
    # The section's own problems are raised; a layer's problems are left to the load.
    write(main, toml_section({"enabled": True}))
    with pytest.raises(ConfigError, match=r"kubernetes\.enabled needs"):
        peek_section(inputs, "kubernetes")
    write(main, "[kubernetes\n")
    assert peek_section(inputs, "kubernetes") is None


def test_a_kubernetes_change_by_reload_is_restart_required(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", "[server]\nworkers = 1\n")
    inputs = ConfigInputs(config_path=main, env={})
    boot = load_config(inputs)
    write(main, "[server]\nworkers = 1\n" + toml_section(SECTION))
    state, reasons = compare(boot, boot, load_config(inputs))
    assert state is DriftState.RESTART_REQUIRED
    assert "kubernetes.enabled: the Kubernetes API source is set up once, at start" in reasons


# -- run's wiring ------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token=TOKEN) as server:
        server.put_configmap(NS, CM, {"server.workers": "3"})
        server.put_secret(NS, SEC, {"auth.jwt_secret": JWT})
        yield server


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as entries:
        yield entries


def source_inputs(tmp_path: Path, url: str, **extra: object) -> ConfigInputs:
    token = write(tmp_path / "token", TOKEN)
    section = {
        **SECTION,
        "api_url": url,
        "token_path": str(token),
        "ca_path": "",
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        **extra,
    }
    main = write(tmp_path / "gateway.toml", toml_section(section))
    return ConfigInputs(config_path=main, env={"RUNTIME_DIRECTORY": str(tmp_path / "run")})


def test_runtime_parent_is_never_the_state_directory() -> None:
    assert runtime_parent({"RUNTIME_DIRECTORY": "/run/a:/run/b", "XDG_RUNTIME_DIR": "/x"}) == (
        Path("/run/a")
    )
    assert runtime_parent({"XDG_RUNTIME_DIR": "/run/user/1", "STATE_DIRECTORY": "/s"}) == Path(
        "/run/user/1"
    )
    assert str(runtime_parent({})).startswith(("/tmp", os.environ.get("TMPDIR", "/tmp")))


def test_disabled_starts_nothing(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", "[server]\nworkers = 1\n")
    assert start_if_enabled(ConfigInputs(config_path=main, env={})) is None


def test_start_mirrors_and_points_the_layers_at_the_mirrors(
    api: FakeKubeApi, tmp_path: Path, logs: Logs
) -> None:
    (tmp_path / "run").mkdir()
    started = start_if_enabled(source_inputs(tmp_path, api.url))
    assert started is not None
    try:
        assert started.directory.parent == tmp_path / "run"
        assert started.inputs.configmap_dir == started.directory / "configmap"
        assert started.inputs.secrets_dir == started.directory / "secrets"
        loaded = load_config(started.inputs)
        assert loaded.config.server.workers == 3
        assert loaded.config.auth.jwt_secret is not None
        assert loaded.config.auth.jwt_secret.get_secret_value() == JWT.decode()
        assert loaded.provenance["auth.jwt_secret"].startswith("secret file ")
    finally:
        started.close()
    assert not started.directory.exists()
    names = [e["event"] for e in logs]
    assert names[0] == "kubernetes.started" and "kubernetes.synced" in names
    assert [e["objects"] for e in logs if e["event"] == "kubernetes.synced"] == [
        [f"ConfigMap {CM}", f"Secret {SEC}"]
    ]
    assert JWT.decode() not in repr(list(logs))


def test_the_operators_directories_win(api: FakeKubeApi, tmp_path: Path, logs: Logs) -> None:
    (tmp_path / "run").mkdir()
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    inputs = source_inputs(tmp_path, api.url)
    started = start_if_enabled(ConfigInputs(**{**vars(inputs), "configmap_dir": mounted}))
    assert started is not None
    try:
        assert started.inputs.configmap_dir == mounted
        assert started.inputs.secrets_dir == started.directory / "secrets"
        assert not (started.directory / "configmap").exists()
    finally:
        started.close()
    assert api.requests("list", "configmaps") == []  # not even asked for
    unused = [e for e in logs if e["event"] == "kubernetes.mirror_unused"]
    assert unused[0]["object"] == f"ConfigMap {CM}" and "--configmap-dir" in unused[0]["reason"]
    both = ConfigInputs(
        **{**vars(inputs), "configmap_dir": mounted, "env": {"REDIS_GATEWAY_SECRETS_DIR": "/s"}}
    )
    assert start_if_enabled(both) is None


def test_unreachable_api_is_a_sync_error_naming_the_cause(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SyncError) as caught:
        start_if_enabled(source_inputs(tmp_path, url, sync_timeout_seconds=0.5))
    message = str(caught.value)
    assert f"the API at {url} did not list ConfigMap {CM} (last error:" in message
    assert "Connection refused" in message and "within 0.5 s" in message
    assert list((tmp_path / "run").iterdir()) == []  # nothing left behind


def test_no_api_url_outside_a_pod_is_a_settings_error(tmp_path: Path) -> None:
    main = write(tmp_path / "gateway.toml", toml_section({**SECTION}))
    inputs = ConfigInputs(config_path=main, env={"RUNTIME_DIRECTORY": str(tmp_path)})
    with pytest.raises(SettingsError, match="KUBERNETES_SERVICE_HOST"):
        start_if_enabled(inputs)
    assert not list(tmp_path.glob("redis-gateway-kubernetes-*"))


def test_status_finds_the_named_socket_while_the_rest_is_invalid(tmp_path: Path) -> None:
    # In a pod with the API source, the CLI cannot read the mirrored Secret: prod is
    # invalid without it, but the socket the config names is still the supervisor's.
    from click.testing import CliRunner

    from supervisor.cli import main as cli

    socket = tmp_path / "ctl.sock"
    config = write(
        tmp_path / "gateway.toml",
        f'profile = "prod"\n[supervisor]\ncontrol_socket = "{socket}"\n',
    )
    result = CliRunner().invoke(cli, ["status", "-c", str(config)])
    assert result.exit_code == 1
    assert f"cannot reach the supervisor at {socket}" in result.output
