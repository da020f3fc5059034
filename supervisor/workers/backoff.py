"""When to replace crashed workers: exponential backoff, counted per round of crashes.

A *round* is the crashes seen before their replacements are started: four workers
that die together (a bad deploy, an OOM kill) wait 0.5 s once, not 0.5 s doubled
four times. Each later round doubles the delay (0.5 s, 1 s, 2 s, ...) up to
``supervisor.restart_backoff_max_seconds``; a worker that stayed ready that long
resets the count (issue 8).
"""

from __future__ import annotations

import collections

#: First delay of the crashed-worker restart backoff (doubles up to the configured cap).
BACKOFF_BASE_SECONDS = 0.5


class CrashBackoff:
    """Crash rounds, the earliest time the next worker may be spawned, restarts per slot."""

    def __init__(self) -> None:
        self.rounds = 0
        self.next_spawn_at = 0.0
        self._round_open = False
        self._slot_restarts: collections.Counter[tuple[int, int]] = collections.Counter()

    def crashed(self, generation: int, slot: int, now: float, cap: float) -> float:
        """Count a crash; returns how long until its replacement may start."""
        self._slot_restarts[(generation, slot)] += 1
        if not self._round_open:
            self._round_open = True
            self.rounds += 1
            self.next_spawn_at = now + min(cap, BACKOFF_BASE_SECONDS * 2 ** (self.rounds - 1))
        return max(0.0, self.next_spawn_at - now)

    def restarts(self, generation: int, slot: int) -> int:
        """How often this slot of this generation was replaced after a crash."""
        return self._slot_restarts[(generation, slot)]

    def may_spawn(self, now: float) -> bool:
        return now >= self.next_spawn_at

    def spawned(self) -> None:
        """Replacements started: the next crash opens a new round."""
        self._round_open = False

    def spawn_failed(self, now: float) -> None:
        """fork/exec failed: try again shortly, whatever the round."""
        self.next_spawn_at = now + BACKOFF_BASE_SECONDS

    def healthy(self) -> None:
        """A worker stayed ready for the cap's duration: the next crash starts over."""
        self.rounds = 0
