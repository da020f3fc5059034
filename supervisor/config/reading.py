"""Reading one config input: only a regular file of at most MAX_INPUT_BYTES, never
one caught mid-write, every failure a problem on the layer (never raised)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from supervisor.config.layers import Layer

#: Largest config input read (a document, a key file, a secret file): far above any
#: real one, and a bound on what `/dev/zero` or a runaway generator can cost.
MAX_INPUT_BYTES = 1 << 20


class _ChangedWhileRead(Exception):
    """The file's size or mtime moved between the start and the end of the read."""


class _Unreadable(Exception):
    """Not something a config input may be (a FIFO, a device, too large)."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_settled(path: Path) -> bytes:
    """The file's bytes, provided it is a regular file of at most MAX_INPUT_BYTES and
    nobody wrote to it while we read (a half-written file must never be taken for a
    whole one). Opened non-blocking: opening a FIFO must not wait for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        before = os.fstat(f.fileno())
        if stat.S_ISDIR(before.st_mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(before.st_mode):
            kind = next((name for test, name in _KINDS if test(before.st_mode)), "not a file")
            raise _Unreadable(f"is {kind}, not a regular file")
        if before.st_size > MAX_INPUT_BYTES:
            raise _Unreadable(
                f"is {before.st_size} bytes, larger than the "
                f"{MAX_INPUT_BYTES} bytes a config input may be"
            )
        data = f.read(MAX_INPUT_BYTES + 1)
        after = os.fstat(f.fileno())
    if len(data) > MAX_INPUT_BYTES:
        raise _Unreadable(f"grew past the {MAX_INPUT_BYTES} bytes a config input may be")
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
        len(data) != after.st_size
    ):
        raise _ChangedWhileRead(str(path))
    return data


def read_text(
    path: Path, layer: Layer, key: str, source: str, shown: str | None = None
) -> str | None:
    """Read a UTF-8 file, turning every failure into a problem on `layer`.

    `shown` replaces the path in messages when the path itself came from a secret.
    """
    name = shown or str(path)
    try:
        data = _read_settled(path)
    except _Unreadable as exc:
        layer.problem(key, source, f"{name} {exc}")
        return None
    except _ChangedWhileRead:
        layer.unsettled = True
        layer.problem(
            key,
            source,
            f"{name} changed while it was being read "
            "(a write in progress); it is read again once it settles",
        )
        return None
    except FileNotFoundError:
        layer.problem(key, source, f"file not found: {name}")
        return None
    except IsADirectoryError:
        layer.problem(key, source, f"is a directory, not a file: {name}")
        return None
    except PermissionError:
        layer.problem(key, source, f"permission denied reading {name}")
        return None
    except OSError as exc:
        layer.problem(key, source, f"cannot read {name}: {exc.strerror or exc}")
        return None
    except ValueError as exc:  # e.g. a NUL byte in the path
        layer.problem(key, source, f"invalid path {name!r}: {exc}")
        return None
    layer.raw.append(data)
    try:
        return data.decode("utf-8-sig")  # tolerate a BOM from Windows editors
    except UnicodeDecodeError as exc:
        layer.problem(key, source, f"not UTF-8 text (invalid byte at offset {exc.start})")
        return None


def warn_if_exposed(path: Path, layer: Layer, shown: str | None = None) -> None:
    """Secret files should not be readable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        layer.warnings.append(
            f"secret file {shown or path} is accessible by group/others (mode {mode & 0o777:04o}); "
            "restrict it to its owner (chmod 600, or defaultMode: 0400 in Kubernetes)"
        )
