"""Hand the heap freed by start-up or a reload back to the OS (issue 3, RSS target)."""

from __future__ import annotations

import gc

from supervisor.reload.outcome import ReloadOutcome


def trim_memory() -> None:
    """Hand the heap freed by start-up or a reload back to the OS (glibc malloc_trim).

    Loading and validating a config allocates and frees megabytes (pydantic schemas,
    parsed files); glibc keeps those pages, so the supervisor's RSS would stay at its
    peak. A no-op where there is no glibc (musl, macOS).
    """
    gc.collect()  # cyclic garbage of the config load first, so its pages are free too
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryTrim:
    """Hooks: ``ready`` and ``reload_finished`` trim (last, after the other services)."""

    def ready(self, status: str) -> None:
        trim_memory()

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        trim_memory()
