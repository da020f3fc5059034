"""The Kubernetes API source against a local fake API server (tests/kube_api.py).

No Kubernetes cluster exists where these tests run: the source is exercised against a
fake server on 127.0.0.1 that speaks the real API's JSON shapes and watch stream (list
with resourceVersion, chunked newline-delimited events, bookmarks, ERROR 410, Status
errors, bearer tokens). Real sockets and real threads; every wait polls to a deadline.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from supervisor.config import ConfigInputs, fingerprint_inputs
from supervisor.config.sources import ConfigMapSource, SecretsDirSource
from supervisor.kubernetes import KubernetesSource
from tests.helpers import wait_until
from tests.kube_api import FakeKubeApi
from tests.kube_support import (
    CM,
    INITIAL,
    JWT,
    NS,
    PASSWORD,
    SEC,
    TOKEN,
    Logs,
    cm_dir,
    events,
    mirrored,
    reconnect_warnings,
    sec_dir,
    settings,
    snapshot,
    sync_point,
)


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token=TOKEN) as server:
        server.put_configmap(NS, CM, INITIAL)
        server.put_secret(NS, SEC, {"auth.jwt_secret": JWT, "redis.default_password": PASSWORD})
        yield server


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as entries:
        yield entries


@pytest.fixture
def source(
    api: FakeKubeApi, token_file: Path, tmp_path: Path, logs: Logs
) -> Iterator[KubernetesSource]:
    src = KubernetesSource(settings(api, token_file), tmp_path / "mirror")
    src.start()
    try:
        assert src.wait_synced(10)
        # Start every test from the steady state: both objects listed and watched.
        wait_until(lambda: api.open_streams() == 2, what="both watch streams open")
        yield src
    finally:
        src.stop()


def inputs(src: KubernetesSource) -> ConfigInputs:
    return ConfigInputs(configmap_dir=cm_dir(src), secrets_dir=sec_dir(src), env={})


def test_list_mirrors_in_kubelet_layout_that_the_loader_reads(source: KubernetesSource) -> None:
    for directory, mode in ((cm_dir(source), 0o644), (sec_dir(source), 0o600)):
        target = os.readlink(directory / "..data")
        assert target.startswith("..") and (directory / target).is_dir()
        names = sorted(n for n in os.listdir(directory) if not n.startswith(".."))
        assert names == sorted(os.listdir(directory / target))
        for name in names:
            assert os.readlink(directory / name) == f"..data/{name}"
            assert (directory / target / name).stat().st_mode & 0o777 == mode
        assert sorted(os.listdir(directory)) == sorted([*names, "..data", target])

    configmap = ConfigMapSource(cm_dir(source)).load()
    assert configmap.problems == [] and configmap.warnings == []
    assert configmap.values[("server", "workers")][0] == "2"
    assert configmap.values[("server", "port")][0] == 8080  # from gateway.toml
    secrets = SecretsDirSource(sec_dir(source)).load()
    assert secrets.problems == [] and secrets.warnings == []  # 0600: no exposure warning
    value, origin = secrets.values[("auth", "jwt_secret")]
    assert value == JWT.decode() and origin.secret
    assert secrets.values[("redis", "default_password")][0] == PASSWORD.decode()


def test_fingerprint_changes_exactly_when_the_data_changes(
    api: FakeKubeApi, source: KubernetesSource
) -> None:
    before = fingerprint_inputs(inputs(source))
    sync_point(api, "configmaps")
    api.put_configmap(NS, CM, INITIAL)  # a MODIFIED event with the same data
    api.put_secret(NS, SEC, {"auth.jwt_secret": JWT, "redis.default_password": PASSWORD})
    sync_point(api, "configmaps")
    sync_point(api, "secrets")
    assert fingerprint_inputs(inputs(source)) == before

    api.put_secret(
        NS, SEC, {"auth.jwt_secret": b"rotated-" + JWT, "redis.default_password": PASSWORD}
    )
    wait_until(lambda: mirrored(sec_dir(source))["auth.jwt_secret"] == b"rotated-" + JWT)
    after = fingerprint_inputs(inputs(source))
    assert after != before
    sync_point(api, "secrets")
    assert fingerprint_inputs(inputs(source)) == after


def version_data(n: int) -> dict[str, str]:
    data = {"a": f"v{n}", "b": f"v{n}", "c": f"v{n}" * 2000}
    if n % 2:
        data["odd"] = f"v{n}"  # keys come and go too
    return data


def test_modified_is_swapped_in_atomically(api: FakeKubeApi, source: KubernetesSource) -> None:
    directory = cm_dir(source)
    done = threading.Event()
    problems: list[str] = []
    seen_versions: set[str] = set()

    def reader() -> None:
        try:
            read_until_done()
        except Exception as exc:  # reported by the assertion below
            problems.append(repr(exc))

    def read_until_done() -> None:
        while not done.is_set():
            target = os.readlink(directory / "..data")
            try:
                files = {
                    n: (directory / target / n).read_text() for n in os.listdir(directory / target)
                }
            except FileNotFoundError:
                if os.readlink(directory / "..data") == target:
                    problems.append(f"{target} lost files while ..data pointed at it")
                continue  # an old directory removed after the swap: expected
            if os.readlink(directory / "..data") != target:
                continue  # swapped while we read: the old one may be half removed
            if set(files) == set(INITIAL):
                continue
            version = int(files["a"][1:])
            if files != version_data(version):
                problems.append(f"{target} is not complete version {version}: {sorted(files)}")
            seen_versions.add(files["a"])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 41):
            api.put_configmap(NS, CM, version_data(n))
        wait_until(
            lambda: mirrored(directory) == {k: v.encode() for k, v in version_data(40).items()}
        )
    finally:
        done.set()
        thread.join()
    assert problems == []
    assert len(seen_versions) >= 2
    leftovers = [n for n in os.listdir(directory) if n.startswith("..")]
    assert sorted(leftovers) == sorted(["..data", os.readlink(directory / "..data")])


def test_bookmark_and_identical_relist_rewrite_nothing(
    api: FakeKubeApi, source: KubernetesSource, logs: Logs
) -> None:
    before = snapshot(cm_dir(source)), snapshot(sec_dir(source))
    mirrors_before = len(events(logs, "kubernetes.mirrored"))
    sync_point(api, "configmaps")
    assert (snapshot(cm_dir(source)), snapshot(sec_dir(source))) == before

    lists_before = len(api.requests("list"))
    api.expire_streams()  # ERROR 410 on both streams: both list again
    wait_until(lambda: len(api.requests("list")) >= lists_before + 2)
    sync_point(api, "configmaps")
    sync_point(api, "secrets")
    assert (snapshot(cm_dir(source)), snapshot(sec_dir(source))) == before
    assert len(events(logs, "kubernetes.mirrored")) == mirrors_before
    assert len(events(logs, "kubernetes.relist")) >= 2


@pytest.mark.parametrize("how", ["error event", "compacted history", "http 410"])
def test_gone_lists_again_and_continues(
    api: FakeKubeApi, source: KubernetesSource, logs: Logs, how: str
) -> None:
    lists_before = len(api.requests("list", "configmaps"))
    if how == "error event":
        api.expire_streams()
    elif how == "compacted history":
        api.compact()
        api.end_streams()  # the next watch asks for a version the server forgot
    else:
        api.fail_next(410, verb="watch", plural="configmaps")
        api.end_streams()
    wait_until(lambda: len(api.requests("list", "configmaps")) > lists_before, what="a new list")
    api.put_configmap(NS, CM, {**INITIAL, "server.workers": "4"})
    wait_until(lambda: mirrored(cm_dir(source))["server.workers"] == b"4")
    relists = [e for e in events(logs, "kubernetes.relist") if e["kind"] == "ConfigMap"]
    assert relists and relists[0]["reason"] in ("Expired", "Gone")
    assert not [
        e
        for e in events(logs, "kubernetes.reconnect")
        if e["log_level"] == "warning" and e["kind"] == "ConfigMap"
    ]


def test_stream_end_reconnects_from_the_last_version(
    api: FakeKubeApi, source: KubernetesSource
) -> None:
    lists_before = len(api.requests("list"))
    version = api.put_configmap(NS, CM, {**INITIAL, "server.workers": "3"})
    wait_until(lambda: mirrored(cm_dir(source))["server.workers"] == b"3")
    watches_before = len(api.requests("watch", "configmaps"))
    api.end_streams()
    wait_until(
        lambda: (
            [
                s.params.get("resourceVersion")
                for s in api.requests("watch", "configmaps")[watches_before:]
            ]
            == [version]
        ),
        what=f"a watch from {version}",
    )
    watch = api.requests("watch", "configmaps")[-1]
    assert watch.params["allowWatchBookmarks"] == "true"
    assert watch.params["fieldSelector"] == f"metadata.name={CM}"
    assert watch.params["timeoutSeconds"] == "60"
    assert len(api.requests("list")) == lists_before  # resumed, not re-listed


def test_server_down_backs_off_and_recovers(
    api: FakeKubeApi, source: KubernetesSource, logs: Logs
) -> None:
    api.go_down()
    api.put_configmap(NS, CM, {**INITIAL, "server.workers": "5"})  # while it is down
    wait_until(lambda: len(reconnect_warnings(logs, "ConfigMap")) >= 4, what="retries")
    api.come_back()
    wait_until(lambda: mirrored(cm_dir(source))["server.workers"] == b"5")
    warnings = reconnect_warnings(logs, "ConfigMap")
    delays = [e["delay_seconds"] for e in warnings]
    assert [e["attempt"] for e in warnings[:4]] == [1, 2, 3, 4]
    assert delays[0] <= 0.05 and all(d <= 0.4 for d in delays)
    assert delays[3] >= 0.4 * 0.8  # doubled up to the cap (jitter takes at most 20 %)


def test_server_errors_back_off_and_recover(
    api: FakeKubeApi, source: KubernetesSource, logs: Logs
) -> None:
    api.fail_next(500, count=3, verb="watch", plural="configmaps")
    api.end_streams()
    api.put_configmap(NS, CM, {**INITIAL, "server.workers": "6"})
    wait_until(lambda: mirrored(cm_dir(source))["server.workers"] == b"6")
    warnings = reconnect_warnings(logs, "ConfigMap")
    attempts = [e["attempt"] for e in warnings]  # (1 may be the stream ended at once)
    assert len(attempts) == 3 and attempts == list(range(attempts[0], attempts[0] + 3))
    assert all("HTTP 500 InternalError: injected failure 500" in e["error"] for e in warnings)
    delays = [e["delay_seconds"] for e in warnings]
    assert delays == sorted(delays) and delays[-1] <= 0.4  # doubling, capped
    assert reconnect_warnings(logs, "Secret") == []


def test_rotated_token_is_read_again(
    api: FakeKubeApi, token_file: Path, source: KubernetesSource
) -> None:
    token_file.write_text("token-1\n")
    api.token = "token-1"
    api.end_streams()
    api.put_configmap(NS, CM, {**INITIAL, "server.workers": "7"})
    wait_until(lambda: mirrored(cm_dir(source))["server.workers"] == b"7")
    assert api.requests("watch", "configmaps")[-1].token == "token-1"


def test_wrong_token_is_retried_with_backoff(
    api: FakeKubeApi, token_file: Path, tmp_path: Path, logs: Logs
) -> None:
    token_file.write_text("not-the-token")
    src = KubernetesSource(settings(api, token_file, secret=None), tmp_path / "m")
    src.start()
    try:
        wait_until(lambda: len(reconnect_warnings(logs, "ConfigMap")) >= 2)
        assert not src.wait_synced(0)
        assert "HTTP 401 Unauthorized" in reconnect_warnings(logs, "ConfigMap")[0]["error"]
        token_file.write_text(TOKEN)
        assert src.wait_synced(10)
    finally:
        src.stop()
    assert "not-the-token" not in repr(logs)


def test_deleted_empties_the_directory_and_added_fills_it(
    api: FakeKubeApi, source: KubernetesSource
) -> None:
    api.delete("configmaps", NS, CM)
    wait_until(lambda: mirrored(cm_dir(source)) == {})
    target = os.readlink(cm_dir(source) / "..data")
    assert os.listdir(cm_dir(source) / target) == []
    layer = ConfigMapSource(cm_dir(source)).load()
    assert layer.values == {} and layer.problems == []
    api.put_configmap(NS, CM, INITIAL)
    wait_until(lambda: mirrored(cm_dir(source)) == {k: v.encode() for k, v in INITIAL.items()})


def test_absent_object_is_an_empty_directory_until_added(
    api: FakeKubeApi, token_file: Path, tmp_path: Path, logs: Logs
) -> None:
    src = KubernetesSource(
        settings(api, token_file, configmap="not-yet", secret=None), tmp_path / "m"
    )
    src.start()
    try:
        assert src.wait_synced(10)
        assert mirrored(cm_dir(src)) == {} and (cm_dir(src) / "..data").is_symlink()
        api.put_configmap(NS, "not-yet", {"server.workers": "8"})
        wait_until(lambda: mirrored(cm_dir(src)) == {"server.workers": b"8"})
    finally:
        src.stop()


def test_404_on_list_empties_the_directory(
    api: FakeKubeApi, source: KubernetesSource, logs: Logs
) -> None:
    api.fail_next(404, verb="list", plural="configmaps")
    api.expire_streams()
    wait_until(
        lambda: (
            [e["keys"] for e in events(logs, "kubernetes.mirrored") if e["kind"] == "ConfigMap"][
                -2:
            ]
            == [[], sorted(INITIAL)]
        ),
        what="emptied, then mirrored again by the next list",
    )


def test_unsafe_key_names_are_skipped(
    api: FakeKubeApi, source: KubernetesSource, tmp_path: Path, logs: Logs
) -> None:
    unsafe = ["../escape", "..data", "..hidden", ".", "..", "a/b"]
    api.put_configmap(
        NS, CM, {"ok.key": "1", **dict.fromkeys(unsafe, "x")}, binary_data={"blob": b"\x00\xff"}
    )
    wait_until(lambda: mirrored(cm_dir(source)) == {"ok.key": b"1", "blob": b"\x00\xff"})
    skipped = {e["key"] for e in events(logs, "kubernetes.key_skipped")}
    assert skipped == set(unsafe)
    assert sorted(os.listdir(tmp_path)) == ["mirror", "token"]
    assert sorted(os.listdir(tmp_path / "mirror")) == ["configmap", "secrets"]


def test_stop_ends_threads_blocked_on_a_silent_stream(
    api: FakeKubeApi, source: KubernetesSource
) -> None:
    wait_until(lambda: api.open_streams() == 2)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.5
    assert not [t for t in threading.enumerate() if t.name.startswith("kubernetes-")]


def test_secrets_never_appear_in_logs(
    api: FakeKubeApi, source: KubernetesSource, token_file: Path, logs: Logs
) -> None:
    bad = b"%%not-base64%%" + JWT
    api.put_secret(NS, SEC, {}, raw={"auth.jwt_secret": bad.decode()})
    wait_until(lambda: reconnect_warnings(logs, "Secret"), what="the malformed event refused")
    assert "is not valid base64" in reconnect_warnings(logs, "Secret")[0]["error"]
    api.send_raw(b'{"type":"MODIFIED","object":{"data":{"k":"' + JWT + b"\n")  # truncated
    api.fail_next(500, verb="list")
    api.put_secret(NS, SEC, {"auth.jwt_secret": JWT + b"-2"})
    wait_until(lambda: mirrored(sec_dir(source)) == {"auth.jwt_secret": JWT + b"-2"})
    api.delete("secrets", NS, SEC)
    wait_until(lambda: mirrored(sec_dir(source)) == {})
    text = repr(logs)
    for secret in (JWT, PASSWORD, base64.b64encode(JWT), base64.b64encode(PASSWORD)):
        assert secret.decode() not in text
    assert TOKEN not in text
    assert events(logs, "kubernetes.mirrored")  # the logs were captured at all
