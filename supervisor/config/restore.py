"""Restoring a backup: its non-secret config pinned over the sources.

A backup (``supervisor.config.store``) holds the effective config *without* secrets. A
restore applies every value of it over the merged layers, except:

* secrets, never in a backup, keep coming from the current sources (secrets
  directory, ``*_file`` keys, env), and so does anything a backup withheld (a value
  read from a secret file, a URL that carried a password);
* an API key entry of the backup takes its ``key`` from the current entry of the same
  name; an entry whose name the sources no longer have cannot be restored (a problem
  says so, nothing is applied);
* ``profile`` stays the one chosen now (a backup of another profile is a problem).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.config.errors import Problem
from supervisor.config.formats import Data
from supervisor.config.layers import Origin, flatten
from supervisor.config.merge import Merged


@dataclass(frozen=True)
class Restore:
    """What to pin: a backup's non-secret config, and a label naming it ("backup v7")."""

    label: str
    tree: Mapping[str, Data]
    #: ``run --resume-last-good``: held only until the sources are valid again (a
    #: restore requested by an operator holds until the files match it).
    until_valid: bool = False


def apply_restore(merged: Merged, restore: Restore, profile: str) -> list[Problem]:
    """Set every value of the backup on ``merged``; the problems that stop it."""
    origin = Origin(restore.label)
    problems: list[Problem] = []
    for path, backed_up in flatten(restore.tree):
        value = backed_up
        if path == ("profile",):
            if value != profile:
                problems.append(
                    Problem(
                        "profile",
                        restore.label,
                        f"the backup was taken under profile {value!r}, not {profile!r}: "
                        f"restore it with --profile {value}",
                    )
                )
            continue
        if path == ("auth", "api_keys") and isinstance(value, list):
            value, missing = _with_current_keys(value, merged.get(path))
            problems.extend(
                Problem(
                    "auth.api_keys",
                    restore.label,
                    f"API key {name!r} of the backup has no key in the current sources; "
                    "add it there first (keys are never kept in backups)",
                )
                for name in missing
            )
        merged.set(path, value, origin)
    return problems


def _with_current_keys(entries: list[Data], current: Data) -> tuple[list[Data], list[str]]:
    """The backup's API key entries with each ``key`` from the current entry of the same
    name, and the names that have none."""
    keys = {}
    if isinstance(current, list):
        keys = {c.get("name"): c.get("key") for c in current if isinstance(c, dict)}
    filled, missing = [], []
    for entry in entries:
        if not isinstance(entry, dict):
            filled.append(entry)
            continue
        name = entry.get("name")
        if keys.get(name) is None:
            missing.append(str(name))
            continue
        filled.append({**entry, "key": keys[name]})
    return filled, missing
