"""The state directory (issue 9): atomic writes, versions, backups without secrets,
history, and files that are corrupt, truncated or not ours."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.config import ConfigInputs, LoadedConfig, load_config
from supervisor.config.state_paths import default_state_dir
from supervisor.config.store import BACKUP_FORMAT, HISTORY_KEEP, StateStore, atomic_write
from tests.helpers import wait_until

CANARY = "canary-store-4d1c8e2f9b7a6350"
KEY = b"s" * 32


def _loaded(tmp_path: Path, *settings: str, secrets_dir: Path | None = None) -> LoadedConfig:
    return load_config(ConfigInputs(overrides=settings, secrets_dir=secrets_dir, env={}), KEY)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / "state", backups_keep=3)
    s.ensure()
    return s


def test_ensure_creates_a_private_directory_and_key(store: StateStore) -> None:
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    key_file = store.directory / "fingerprint.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = store.fingerprint_key()
    assert key is not None and len(key) == 32
    store.ensure()
    assert store.fingerprint_key() == key  # kept across restarts


def test_default_state_dir_follows_systemd_then_xdg() -> None:
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/rg:/other"}) == Path("/var/lib/rg")
    assert default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/redis-gateway")


def test_versions_are_monotonic_and_a_restart_keeps_the_same(
    store: StateStore, tmp_path: Path
) -> None:
    a, b = _loaded(tmp_path, "server.workers=1"), _loaded(tmp_path, "server.workers=2")
    assert store.next_version(a.hash) == 1
    store.commit(a, version=1, trigger="start")
    assert store.next_version(a.hash) == 1  # same config after a restart: same version
    assert store.next_version(b.hash) == 2
    store.commit(b, version=2, trigger="SIGHUP", changed=["server.workers"])
    assert store.last_committed() == (2, b.hash)
    (store.directory / "state.json").write_text("{broken")
    assert store.next_version(a.hash) == 3  # unreadable state: above the newest backup


def test_backups_hold_no_secret_and_say_which_were_withheld(
    store: StateStore, tmp_path: Path
) -> None:
    secrets = tmp_path / "sec"
    secrets.mkdir()
    (secrets / "redis.url").write_text(f"redis://127.0.0.1:6390/{CANARY[:3]}")
    (secrets / "redis.url").chmod(0o600)
    loaded = _loaded(
        tmp_path,
        f"auth.jwt_secret={CANARY}",
        f'auth.api_keys=[{{"name": "app", "key": "{CANARY}", "policy": "safe"}}]',
        secrets_dir=secrets,
    )
    backup = store.commit(loaded, version=7, trigger="file", changed=["auth.jwt_secret"])
    raw = backup.path.read_text()
    assert CANARY not in raw and CANARY[:3] + '"' not in raw
    assert "**********" not in raw  # removed, not masked
    assert set(backup.secrets) == {"auth.jwt_secret", "auth.api_keys.0.key", "redis.url"}
    assert backup.config["auth"]["api_keys"] == [
        {"name": "app", "policy": "safe", "key_prefix": None, "admin": False}
    ]
    assert backup.config["server"]["workers"] == loaded.config.server.workers
    assert (backup.version, backup.hash, backup.trigger) == (7, loaded.hash, "file")
    assert stat.S_IMODE(backup.path.stat().st_mode) == 0o600
    url = _loaded(tmp_path, f"redis.url=redis://u:{CANARY}@h:1")
    assert CANARY not in store.commit(url, version=8, trigger="x").path.read_text()


def test_only_the_last_backups_are_kept(store: StateStore, tmp_path: Path) -> None:
    for version in range(1, 6):
        store.commit(_loaded(tmp_path, f"server.workers={version}"), version=version, trigger="t")
    assert [b.version for b in store.backups().items] == [5, 4, 3]


def test_corrupt_truncated_and_foreign_files_are_reported_and_skipped(
    store: StateStore,
    tmp_path: Path,
) -> None:
    good = store.commit(_loaded(tmp_path, "server.workers=1"), version=1, trigger="t")
    folder = store.directory / "backups"
    (folder / "v00000002.json").write_text(good.path.read_text()[:40])  # truncated
    (folder / "v00000003.json").write_text('{"format": "someone-else/9"}')
    (folder / "v00000004.json").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "v00000005.json").write_text(json.dumps({"format": BACKUP_FORMAT}))
    (folder / ".v00000006.json.abc.tmp").write_text("partial")  # interrupted write
    found = store.backups()
    assert [b.version for b in found.items] == [1]
    assert len(found.problems) == 4
    assert all("skipped" in p for p in found.problems)
    assert any("not a redis-gateway backup" in p for p in found.problems)
    assert any("incomplete backup" in p for p in found.problems)


def test_a_kill_during_a_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b'{"version": 1}')
    # A child writes 200 MB through atomic_write and is SIGKILLed while it does.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys; from pathlib import Path; "
                "from supervisor.config.store import atomic_write; "
                "print('go', flush=True); "
                f"atomic_write(Path({str(target)!r}), b'x' * (200 << 20))"
            ),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None and child.stdout.readline() == b"go\n"
    wait_until(
        lambda: any(p.name.startswith(".state.json.") for p in tmp_path.iterdir()),
        timeout=20,
        what="the temp file being written",
    )
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert target.read_bytes() == b'{"version": 1}'


def test_history_is_appended_read_back_and_bounded(store: StateStore) -> None:
    for n in range(HISTORY_KEEP + 50):
        store.append_history({"n": n, "outcome": "committed"})
    entries, problems = store.history(limit=None)
    assert problems == []
    assert len(entries) <= HISTORY_KEEP + 50 and entries[-1]["n"] == HISTORY_KEEP + 49
    with open(store.directory / "history.jsonl", "a") as f:
        f.write("{truncated\n")
    entries, problems = store.history(limit=5)
    assert [e["n"] for e in entries] == list(range(HISTORY_KEEP + 45, HISTORY_KEEP + 50))
    assert len(problems) == 1 and "not a JSON line" in problems[0]
