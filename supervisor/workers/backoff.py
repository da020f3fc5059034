"""When to replace crashed workers: exponential backoff, counted per round of crashes.

A *round* is the crashes seen before their replacements are started: four workers
that die together (a bad deploy, an OOM kill) wait 0.5 s once, not 0.5 s doubled
four times. Each later round doubles the delay (0.5 s, 1 s, 2 s, ...) up to
``supervisor.restart_backoff_max_seconds``; a worker that stayed ready that long
resets the count (issue 8).

While no worker of the serving generation is ready, nothing is protected by waiting
longer, and every second waited is a second of outage after the cause (Redis down, a
missing file) is gone: the delay is then at most ``UNSERVED_MAX_DELAY_SECONDS``, and
the pool starts a single *probe* worker per round instead of every missing one (one
interpreter boot per round, not one per slot, however long the outage). Once a probe
is ready the cause is gone: the other slots start at once.
"""

from __future__ import annotations

import collections

#: First delay of the crashed-worker restart backoff (doubles up to the configured cap).
BACKOFF_BASE_SECONDS = 0.5
#: Longest delay before the next probe while no worker serves: service returns within
#: this plus one worker boot (~0.1 s from a warm standby) after the cause is gone.
UNSERVED_MAX_DELAY_SECONDS = 0.5


def restart_delay(rounds: int, cap: float) -> float:
    """The delay before restarting after the ``rounds``-th consecutive crash (>= 1):
    ``BACKOFF_BASE_SECONDS`` doubled per round, at most ``cap``. Workers and the
    embedded Redis (``supervisor.workers.redis_keeper``) both wait this long."""
    return min(cap, BACKOFF_BASE_SECONDS * 2.0 ** (rounds - 1))


class CrashBackoff:
    """Crash rounds, the earliest time the next worker may be spawned, restarts per slot."""

    def __init__(self) -> None:
        self.rounds = 0
        self.next_spawn_at = 0.0
        #: A probe was started while no worker served (see the module docstring).
        self.probing = False
        self._round_open = False
        self._round_started_at = 0.0
        self._slot_restarts: collections.Counter[tuple[int, int]] = collections.Counter()

    def crashed(
        self, generation: int, slot: int, now: float, cap: float, serving: bool = True
    ) -> float:
        """Count a crash; returns how long until its replacement may start (``serving``:
        whether another worker of the generation is still ready)."""
        self._slot_restarts[(generation, slot)] += 1
        if not self._round_open:
            self._round_open = True
            self.rounds += 1
            self._round_started_at = now
            self.next_spawn_at = now + restart_delay(self.rounds, cap)
        return self.wait(now, serving)

    def wait(self, now: float, serving: bool = True) -> float:
        """Seconds until the next spawn; shorter while nothing serves (module docstring)."""
        due = self.next_spawn_at
        if not serving:
            due = min(due, self._round_started_at + UNSERVED_MAX_DELAY_SECONDS)
        return max(0.0, due - now)

    def restarts(self, generation: int, slot: int) -> int:
        """How often this slot of this generation was replaced after a crash."""
        return self._slot_restarts[(generation, slot)]

    def may_spawn(self, now: float, serving: bool = True) -> bool:
        return self.wait(now, serving) == 0.0

    def spawned(self, probe: bool = False) -> None:
        """Replacements started: the next crash opens a new round."""
        self._round_open = False
        self.probing = self.probing or probe

    def recovered(self, now: float) -> None:
        """A probe became ready: the remaining slots may start now."""
        self.probing = False
        self.next_spawn_at = min(self.next_spawn_at, now)

    def spawn_failed(self, now: float) -> None:
        """fork/exec failed: try again shortly, whatever the round."""
        self.next_spawn_at = now + BACKOFF_BASE_SECONDS
        self._round_started_at = now

    def healthy(self) -> None:
        """A worker stayed ready for the cap's duration: the next crash starts over."""
        self.rounds = 0
