"""Write a payload into a directory the way kubelet writes a ConfigMap/Secret volume.

Layout (what ``supervisor.config.sources._DirectorySource`` and the watcher expect)::

    <dir>/..2024_05_01_12_00_00.123abc/   the data: one file per key
    <dir>/..data -> ..2024_05_01_12_00_00.123abc
    <dir>/<key>  -> ..data/<key>           one symlink per key

An update (the same steps as kubelet's atomic writer): write a new ``..<timestamp>``
directory with every file; create the symlinks of new keys; point ``..data_tmp`` at
the new directory and rename it over ``..data`` (the one atomic step: a reader going
through ``..data`` sees the whole old or the whole new data, never a mix); remove the
symlinks of keys that went away; remove the old data directories.

Between the steps a key symlink may dangle for a moment (a new key before the swap, a
removed one after it). The loader reports a dangling key as a problem instead of
reading the config without it, and the watcher waits for the inputs to settle, so a
partial key set is never applied.

Nothing is written when the payload equals what ``..data`` holds: a bookmark or a
re-list with the same data changes no byte, no mtime and no ``..data`` target.

Files are not fsync'ed: the mirror is rebuilt from the API on every start.
The directory belongs to the mirror; one that holds anything but a mirror is refused
rather than taken over.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from supervisor.kubernetes.errors import MirrorError
from supervisor.kubernetes.objects import Payload, is_safe_key

DATA = "..data"
DATA_TMP = "..data_tmp"
KEY_TMP = "..key_tmp"


class Mirror:
    """One mirrored object's directory. Not thread-safe: one writer per directory."""

    def __init__(self, directory: Path, *, secret: bool) -> None:
        self.directory = directory
        self.secret = secret
        self._dir_mode = 0o700 if secret else 0o755
        self._file_mode = 0o600 if secret else 0o644

    def current(self) -> Payload | None:
        """What ``..data`` holds, or None when there is no complete mirror."""
        try:
            target = os.readlink(self.directory / DATA)
            data_dir = self.directory / target
            return {name: (data_dir / name).read_bytes() for name in os.listdir(data_dir)}
        except OSError:
            return None

    def write(self, payload: Payload) -> bool:
        """Make the directory hold ``payload``; False when it already did."""
        unsafe = [name for name in payload if not is_safe_key(name)]
        if unsafe:  # the caller filters them out; this guards the filesystem
            raise MirrorError(f"{self.directory}: unsafe key names {unsafe!r}")
        try:
            self._prepare()
            if self.current() == payload and self._visible() == set(payload):
                return False
            self._swap_in(payload)
        except OSError as exc:
            raise MirrorError(
                f"cannot write the mirror {self.directory}: "
                f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
            ) from None
        return True

    def _prepare(self) -> None:
        self.directory.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
        names = os.listdir(self.directory)
        if DATA in names:
            return
        # Without ..data, only the leftovers of a first write that died are expected.
        foreign = [
            n
            for n in names
            if not n.startswith("..")
            and not (
                (self.directory / n).is_symlink()
                and os.readlink(self.directory / n).startswith(f"{DATA}/")
            )
        ]
        if foreign:
            raise MirrorError(
                f"{self.directory} is not empty and is not a mirror (no "
                f"{DATA}); refusing to take it over"
            )

    def _visible(self) -> set[str]:
        return {n for n in os.listdir(self.directory) if not n.startswith("..")}

    def _swap_in(self, payload: Payload) -> None:
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        data_dir = Path(tempfile.mkdtemp(prefix=f"..{stamp}.", dir=self.directory))
        os.chmod(data_dir, self._dir_mode)
        for name, content in payload.items():
            self._write_file(data_dir / name, content)
        for name in payload:
            self._link_key(name)
        tmp_link = self.directory / DATA_TMP
        if tmp_link.is_symlink():
            tmp_link.unlink()  # left over by a writer that died mid-way
        os.symlink(data_dir.name, tmp_link)
        os.replace(tmp_link, self.directory / DATA)
        for name in self._visible() - set(payload):
            self._remove(self.directory / name)
        for name in os.listdir(self.directory):
            path = self.directory / name
            if (
                name.startswith("..")
                and name not in (DATA, data_dir.name)
                and not path.is_symlink()
                and path.is_dir()
            ):
                shutil.rmtree(path)

    def _write_file(self, path: Path, content: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, self._file_mode)
        try:
            os.fchmod(fd, self._file_mode)  # the umask must not change it
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _link_key(self, name: str) -> None:
        link = self.directory / name
        target = f"{DATA}/{name}"
        if link.is_symlink() and os.readlink(link) == target:
            return
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        tmp = self.directory / KEY_TMP
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
