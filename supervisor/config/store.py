"""The state directory: config versions, backups, history and the fingerprint key.

Layout of ``supervisor.state_dir`` (created 0700; see ``default_state_dir``)::

    fingerprint.key          32 random bytes (0600): keys the secret fingerprints in
                             config hashes, so no secret can be recovered from a hash
    state.json               {"version": N, "hash": "..."}: the last committed config
    backups/v00000012.json   one per committed config, the last ``backups_keep`` kept
    history.jsonl            one line per reload attempt, the last HISTORY_KEEP kept

Every file is written atomically (temp file in the same directory, fsync, rename,
fsync of the directory), so a crash or a kill mid-write leaves the previous file
whole. A backup holds the effective *non-secret* config and metadata; secret values
are never written (their keys are listed, so a restore knows to take them from the
current sources). A file that is corrupt, truncated or not ours is reported (in
``Backups.problems``) and skipped, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway_worker.config import SECRET_MASK, dump_redacted
from supervisor.config import schema
from supervisor.config.formats import Data
from supervisor.config.loader import LoadedConfig
from supervisor.config.state_paths import KEY_BYTES, KEY_FILE, read_fingerprint_key

BACKUP_FORMAT = "redis-gateway-backup/1"
HISTORY_KEEP = 1000


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file,
    whole, even across a crash (temp file, fsync, rename, fsync of the directory)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _from_secret_source(source: str) -> bool:
    return source.startswith(("secret file ", "secrets "))


def non_secret_tree(loaded: LoadedConfig) -> tuple[dict[str, Data], list[str]]:
    """The effective config with every secret *removed* (not masked), and the dotted
    keys withheld: SecretStr fields (also inside API key entries), values that came
    from a secret file or the secrets directory, and URLs that carry a password."""
    withheld: list[str] = []

    def strip(node: Data, path: tuple[str | int, ...]) -> Data:
        if isinstance(node, dict):
            kept = {}
            for key, value in node.items():
                child = (*path, key)
                dotted = ".".join(str(p) for p in child)
                if value is not None and (
                    schema.is_secret_string(child)
                    or _from_secret_source(loaded.provenance.get(dotted, ""))
                    or (isinstance(value, str) and SECRET_MASK in value)
                ):
                    withheld.append(dotted)
                    continue
                kept[key] = strip(value, child)
            return kept
        if isinstance(node, list):
            return [strip(v, (*path, i)) for i, v in enumerate(node)]
        return node

    tree = strip(dump_redacted(loaded.config), ())
    assert isinstance(tree, dict)
    return tree, withheld


@dataclass(frozen=True)
class Backup:
    """One committed config as kept on disk."""

    version: int
    hash: str
    time: float
    trigger: str
    outcome: str
    changed: list[str]
    config: dict[str, Data]
    secrets: list[str]
    path: Path

    def summary(self) -> dict[str, Data]:
        return {
            "version": self.version,
            "hash": self.hash,
            "time": self.time,
            "trigger": self.trigger,
            "outcome": self.outcome,
            "changed": self.changed,
        }


@dataclass
class Backups:
    """What ``StateStore.backups()`` found: readable backups (newest first) and the
    files it skipped, each with why."""

    items: list[Backup] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, version: int) -> Backup | None:
        return next((b for b in self.items if b.version == version), None)


def _parse_backup(path: Path) -> Backup:
    """A backup file, or ValueError saying what is wrong with it."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != BACKUP_FORMAT:
        raise ValueError(
            f"not a redis-gateway backup (format {data.get('format')!r})"
            if isinstance(data, dict)
            else "not a redis-gateway backup"
        )
    try:
        return Backup(
            version=int(data["version"]),
            hash=str(data["hash"]),
            time=float(data["time"]),
            trigger=str(data["trigger"]),
            outcome=str(data["outcome"]),
            changed=list(data["changed"]),
            config=dict(data["config"]),
            secrets=list(data["secrets"]),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"incomplete backup ({type(exc).__name__}: {exc})") from None


class StateStore:
    """Reads and writes the state directory (see the module docstring)."""

    def __init__(self, directory: Path, backups_keep: int = 20) -> None:
        self.directory = directory
        self.backups_keep = backups_keep

    # -- set-up -----------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the directory (0700) and the key; OSError if impossible."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.directory / "backups").mkdir(mode=0o700, exist_ok=True)
        if read_fingerprint_key(self.directory) is None:
            atomic_write(self.directory / KEY_FILE, secrets.token_bytes(KEY_BYTES))

    def fingerprint_key(self) -> bytes | None:
        return read_fingerprint_key(self.directory)

    # -- versions ---------------------------------------------------------------------

    def last_committed(self) -> tuple[int, str | None]:
        """(version, hash) of the last committed config; (0, None) when none (or the
        state file is unreadable: versions then restart above the newest backup)."""
        try:
            data = json.loads((self.directory / "state.json").read_bytes())
            return int(data["version"]), str(data["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            newest = max((b.version for b in self.backups().items), default=0)
            return newest, None

    def next_version(self, config_hash: str) -> int:
        """The version a config committed now gets: the last one again when the config
        is the same (a restart), else one more. Never lower than anything on disk."""
        version, last_hash = self.last_committed()
        return version if last_hash == config_hash and version else version + 1

    # -- backups ----------------------------------------------------------------------

    def commit(
        self,
        loaded: LoadedConfig,
        *,
        version: int,
        trigger: str,
        outcome: str = "committed",
        changed: list[str] | None = None,
    ) -> Backup:
        """Record a committed config: its backup, then state.json, then pruning."""
        tree, withheld = non_secret_tree(loaded)
        record = {
            "format": BACKUP_FORMAT,
            "version": version,
            "hash": loaded.hash,
            "time": time.time(),
            "trigger": trigger,
            "outcome": outcome,
            "changed": list(changed or []),
            "config": tree,
            "secrets": withheld,
        }
        path = self.directory / "backups" / f"v{version:08d}.json"
        atomic_write(path, json.dumps(record, indent=1, sort_keys=True).encode())
        atomic_write(
            self.directory / "state.json",
            json.dumps({"version": version, "hash": loaded.hash}).encode(),
        )
        self._prune()
        return _parse_backup(path)

    def backups(self) -> Backups:
        found = Backups()
        folder = self.directory / "backups"
        try:
            names = sorted(os.listdir(folder), reverse=True)
        except FileNotFoundError:
            return found
        except OSError as exc:
            found.problems.append(f"{folder}: cannot list ({exc.strerror or exc})")
            return found
        for name in names:
            if name.startswith("."):
                continue  # temp files of an interrupted write
            path = folder / name
            try:
                found.items.append(_parse_backup(path))
            except ValueError as exc:
                found.problems.append(f"{path}: {exc}; skipped")
        found.items.sort(key=lambda b: b.version, reverse=True)
        return found

    def _prune(self) -> None:
        for backup in self.backups().items[self.backups_keep :]:
            with contextlib.suppress(OSError):
                backup.path.unlink()

    # -- history ----------------------------------------------------------------------

    def append_history(self, entry: dict[str, Data]) -> None:
        """One reload attempt; the file keeps the last HISTORY_KEEP entries."""
        path = self.directory / "history.jsonl"
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size > 512 * HISTORY_KEEP:  # cheap check first; trim only when it may be long
            entries = self.history(limit=None)[0]
            if len(entries) > HISTORY_KEEP:
                kept = entries[-HISTORY_KEEP:]
                atomic_write(
                    path,
                    "".join(
                        json.dumps(e, sort_keys=True, default=str) + "\n" for e in kept
                    ).encode(),
                )

    def history(self, limit: int | None = 50) -> tuple[list[dict[str, Data]], list[str]]:
        """(entries oldest first, the last ``limit``; problems: unreadable lines)."""
        path = self.directory / "history.jsonl"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [f"{path}: cannot read ({exc.strerror or exc})"]
        entries, problems = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append(f"{path}:{number}: not a JSON line; skipped")
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                problems.append(f"{path}:{number}: not a history entry; skipped")
        return (entries if limit is None else entries[-limit:]), problems
