"""The parts of the Kubernetes API source: settings, the JSON edge, the mirror, the
backoff, the HTTP client (against the local fake API server of tests/kube_api.py: no
cluster exists where these tests run), TLS, and that no secret reaches an exception.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import ssl
import threading
import time
import traceback
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from supervisor.kubernetes import (
    ApiError,
    GoneError,
    KubernetesError,
    KubernetesSettings,
    KubernetesSource,
    MirrorError,
    ProtocolError,
    SettingsError,
    TransportError,
)
from supervisor.kubernetes.api import ApiClient, WatchEvent
from supervisor.kubernetes.backoff import Backoff
from supervisor.kubernetes.mirror import Mirror
from supervisor.kubernetes.objects import CONFIGMAP, SECRET, extract
from supervisor.kubernetes.settings import resolve_api_url, resolve_namespace
from tests.helpers import self_signed_cert, wait_until
from tests.kube_api import FakeKubeApi
from tests.kube_support import CM, JWT, NS, SEC, TOKEN, mirrored, reconnect_warnings, settings


def assert_clean(exc: BaseException, *secrets: bytes) -> None:
    """Neither the message, nor the traceback, nor a chained exception holds a secret."""
    text = "".join(traceback.format_exception(exc)) + repr(exc.__context__)
    for secret in secrets:
        assert secret.decode() not in text


def test_settings_validate_names_and_bounds() -> None:
    assert KubernetesSettings(configmap="a.b-c").token_path == Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
    for bad in (
        {},
        {"configmap": "Bad_Name"},
        {"secret": "../x"},
        {"configmap": "a", "namespace": "a.b"},
        {"configmap": "a", "timeout_seconds": 0},
        {"configmap": "a", "backoff_initial_seconds": 5, "backoff_max_seconds": 1},
    ):
        with pytest.raises(SettingsError):
            KubernetesSettings(**bad)


def test_api_url_and_namespace_default_to_the_pod(tmp_path: Path) -> None:
    s = KubernetesSettings(configmap="a")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert resolve_api_url(s, env) == "https://10.0.0.1:443"
    assert resolve_api_url(s, {**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}) == (
        "https://[fd00::1]:443"
    )
    assert resolve_api_url(KubernetesSettings(configmap="a", api_url="http://x:1/"), {}) == (
        "http://x:1"
    )
    with pytest.raises(SettingsError, match="KUBERNETES_SERVICE_HOST"):
        resolve_api_url(s, {})
    (tmp_path / "namespace").write_text("prod\n")
    assert resolve_namespace(s, tmp_path / "namespace") == "prod"
    assert resolve_namespace(KubernetesSettings(namespace="x", configmap="a")) == "x"
    with pytest.raises(SettingsError, match="namespace"):
        resolve_namespace(s, tmp_path / "missing")


def test_extract_decodes_and_skips_unsafe_keys() -> None:
    configmap = {
        "data": {"a": "1", "../b": "2"},
        "binaryData": {"bin": base64.b64encode(b"\0\xff").decode()},
    }
    out = extract(CONFIGMAP, configmap, "ConfigMap x")
    assert out.payload == {"a": b"1", "bin": b"\0\xff"} and out.skipped == ("../b",)
    secret = {"data": {"k": base64.b64encode(JWT).decode()}, "type": "Opaque"}
    assert extract(SECRET, secret, "Secret x").payload == {"k": JWT}
    assert extract(SECRET, {}, "Secret x").payload == {}
    with pytest.raises(ProtocolError, match="not a string"):
        extract(CONFIGMAP, {"data": {"a": 1}}, "ConfigMap x")


def test_no_secret_in_decoding_errors() -> None:
    with pytest.raises(ProtocolError) as caught:
        extract(SECRET, {"data": {"k": "%%" + JWT.decode()}}, "Secret x")
    assert "key 'k' is not valid base64" in str(caught.value)
    assert caught.value.__context__ is None
    assert_clean(caught.value, JWT)


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token=TOKEN) as server:
        server.put_configmap(NS, CM, {"a": "1"})
        yield server


def client(api: FakeKubeApi, token_file: Path | None) -> ApiClient:
    return ApiClient(
        api.url,
        NS,
        token_path=token_file,
        ca_path=None,
        timeout_seconds=2.0,
        watch_timeout_seconds=30,
    )


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    return path


def test_client_lists_and_watches(api: FakeKubeApi, token_file: Path) -> None:
    c = client(api, token_file)
    listed = c.list(CONFIGMAP, CM)
    assert listed.obj is not None and listed.obj["data"] == {"a": "1"}
    assert c.list(CONFIGMAP, "absent").obj is None
    assert listed.resource_version is not None
    received: list[WatchEvent] = []

    def watch() -> None:
        assert listed.resource_version is not None
        received.extend(c.watch(CONFIGMAP, CM, listed.resource_version))

    thread = threading.Thread(target=watch)
    thread.start()
    wait_until(lambda: api.open_streams() == 1)
    api.put_configmap(NS, CM, {"a": "2"})
    api.bookmark()
    api.end_streams()
    thread.join(5)
    assert [e.type for e in received] == ["MODIFIED", "BOOKMARK"]
    assert received[0].obj["data"] == {"a": "2"}
    assert received[1].obj["metadata"].keys() == {"resourceVersion"}


def test_client_errors(api: FakeKubeApi, token_file: Path, tmp_path: Path) -> None:
    c = client(api, token_file)
    api.compact()
    with pytest.raises(GoneError) as gone:
        list(c.watch(CONFIGMAP, CM, "1"))
    assert gone.value.status == 410 and gone.value.reason == "Expired"
    api.fail_next(403)
    with pytest.raises(ApiError, match="HTTP 403 Forbidden"):
        c.list(CONFIGMAP, CM)
    with pytest.raises(ApiError, match="HTTP 401 Unauthorized"):
        client(api, None).list(CONFIGMAP, CM)
    with pytest.raises(TransportError, match="token file"):
        client(api, tmp_path / "missing").list(CONFIGMAP, CM)
    (tmp_path / "bad").write_text(f"{TOKEN}\nX-Injected: {JWT.decode()}")
    with pytest.raises(TransportError, match="characters a bearer token cannot have") as bad:
        client(api, tmp_path / "bad").list(CONFIGMAP, CM)
    assert_clean(bad.value, JWT, TOKEN.encode())
    api.go_down()
    with pytest.raises(TransportError, match="Connection refused"):
        c.list(CONFIGMAP, CM)


def test_no_secret_in_stream_errors(api: FakeKubeApi, token_file: Path) -> None:
    c = client(api, token_file)
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            list(c.watch(SECRET, SEC, "1"))
        except KubernetesError as exc:
            errors.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    wait_until(lambda: api.open_streams() == 1)
    api.send_raw(
        b'{"type":"ADDED","object":{"data":{"k":"'
        + base64.b64encode(JWT)
        + b'", "v": "'
        + JWT
        + b"\n"
    )
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    assert errors[0].__context__ is None
    assert_clean(errors[0], JWT, base64.b64encode(JWT))


def test_interrupt_ends_a_blocked_watch_at_once(api: FakeKubeApi, token_file: Path) -> None:
    c = client(api, token_file)
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            list(c.watch(CONFIGMAP, CM, "1"))
        except TransportError as exc:
            errors.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    wait_until(lambda: api.open_streams() == 1)
    started = time.monotonic()
    c.interrupt()
    thread.join(5)
    assert time.monotonic() - started < 1.0 and len(errors) == 1
    with pytest.raises(TransportError, match="stopped"):
        c.list(CONFIGMAP, CM)


def test_mirror_writes_only_changes(tmp_path: Path) -> None:
    m = Mirror(tmp_path / "s", secret=True)
    assert m.current() is None
    assert m.write({"a": b"1", "b": b"\0\xff"})
    target = os.readlink(tmp_path / "s" / "..data")
    assert not m.write({"a": b"1", "b": b"\0\xff"})
    assert os.readlink(tmp_path / "s" / "..data") == target
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "s" / target).stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "s" / "a").stat().st_mode & 0o777 == 0o600
    assert m.write({"b": b"2"})
    assert mirrored(tmp_path / "s") == {"b": b"2"}
    assert sorted(os.listdir(tmp_path / "s")) == sorted(
        ["..data", os.readlink(tmp_path / "s" / "..data"), "b"]
    )
    assert m.write({})
    assert mirrored(tmp_path / "s") == {} and m.current() == {}
    with pytest.raises(MirrorError, match="unsafe"):
        m.write({"../x": b""})


def test_mirror_refuses_a_foreign_directory_and_recovers_its_leftovers(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "gateway.toml").write_text("x")
    with pytest.raises(MirrorError, match="not a mirror"):
        Mirror(foreign, secret=False).write({"a": b"1"})
    assert os.listdir(foreign) == ["gateway.toml"]

    died = tmp_path / "died"  # a first write that died before the swap
    (died / "..2020_01_01_00_00_00.x").mkdir(parents=True)
    (died / "..2020_01_01_00_00_00.x" / "a").write_text("0")
    os.symlink("..2020_01_01_00_00_00.x", died / "..data_tmp")
    os.symlink("..data/a", died / "a")
    m = Mirror(died, secret=False)
    assert m.write({"a": b"1"})
    assert mirrored(died) == {"a": b"1"}
    assert sorted(os.listdir(died)) == sorted(["..data", os.readlink(died / "..data"), "a"])
    assert (died / "a").stat().st_mode & 0o777 == 0o644


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    class Low(random.Random):
        def random(self) -> float:
            return 0.0

    b = Backoff(0.5, 4.0, rng=Low())
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5
    jittered = Backoff(1.0, 1.0, jitter=0.2)
    assert all(0.8 <= jittered.next_delay() <= 1.0 for _ in range(100))
    for _ in range(2000):
        b.next_delay()  # a very long outage does not overflow
    assert b.next_delay() == 4.0


def test_https_verifies_the_api_against_the_ca_file(tmp_path: Path, token_file: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make test certificates")
    cert, key = self_signed_cert(tmp_path, "server")
    other, _ = self_signed_cert(tmp_path, "other")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FakeKubeApi(token=TOKEN, tls=context) as api, structlog.testing.capture_logs() as logs:
        api.put_configmap(NS, CM, {"a": "1"})
        assert api.url.startswith("https://")
        wrong = KubernetesSource(
            settings(api, token_file, secret=None, ca_path=other), tmp_path / "wrong"
        )
        good = KubernetesSource(
            settings(api, token_file, secret=None, ca_path=cert), tmp_path / "good"
        )
        wrong.start()
        good.start()
        try:
            assert good.wait_synced(10)
            assert good.configmap_dir is not None
            assert mirrored(good.configmap_dir) == {"a": b"1"}
            wait_until(lambda: reconnect_warnings(logs, "ConfigMap"))
            assert "CERTIFICATE_VERIFY_FAILED" in reconnect_warnings(logs, "ConfigMap")[0]["error"]
            assert not wrong.wait_synced(0)
        finally:
            wrong.stop()
            good.stop()


def test_logs_follow_a_logging_configured_after_construction(
    tmp_path: Path, token_file: Path
) -> None:
    """The supervisor configures (and on reload re-configures) structlog after the
    source exists; events must reach the configuration current when they happen."""
    seen: list[str] = []

    def collect(_logger: object, _name: str, event: MutableMapping[str, Any]) -> str:
        seen.append(str(event["event"]))
        raise structlog.DropEvent

    saved = structlog.get_config()
    with FakeKubeApi(token=TOKEN) as api:
        api.put_configmap(NS, CM, {"a": "1"})
        src = KubernetesSource(settings(api, token_file, secret=None), tmp_path / "m")
        structlog.configure(processors=[collect])
        try:
            src.start()
            wait_until(lambda: "kubernetes.mirrored" in seen)
        finally:
            src.stop()
            structlog.configure(**saved)
