"""Capped exponential backoff between reconnects, with jitter.

Every pod of a Deployment loses the API at the same moment (an API server restart);
the jitter keeps them from all coming back in the same instant.
"""

from __future__ import annotations

import random


class Backoff:
    """``initial``, doubling per failure up to ``maximum``; each delay is then
    scaled by a random factor in [1 - jitter, 1], so it never exceeds ``maximum``."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        if not 0 <= jitter < 1:
            raise ValueError("need 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        # Not cryptographic: it only spreads reconnects over time.
        self._rng = rng or random.Random()  # noqa: S311
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, counting one more failure."""
        # Capping the exponent keeps 2**n finite after a very long outage.
        base = min(self.maximum, self.initial * 2.0 ** min(self.failures, 62))
        self.failures += 1
        return base * (1 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """A success: the next failure waits ``initial`` again."""
        self.failures = 0
