"""The drain of one HTTP connection: an object each protocol owns, in both engines.

Stock uvicorn's ``shutdown()`` closes a connection *at once* when no request is in
flight. A client that had just sent a request on that keep-alive connection (or had
just connected and not yet sent anything) then gets a reset or an empty reply: the race
behind the residual errors of uvicorn's own reload tests. A draining connection here
instead:

* with a request in flight: lets it finish and closes after its reply
  (``keep_alive = False``: the reply carries ``Connection: close``);
* idle: stays open for the idle grace (``DrainPolicy.idle_grace_seconds``); bytes that
  arrive restart the grace, and a request among them is answered with
  ``Connection: close``; after a whole grace of silence the connection is closed.

A protocol holds ``None`` until its server drains, then a ``ConnectionDrain`` it creates
in ``shutdown()`` (called by ``Server.shutdown``) or in ``connection_made`` when the
server already drains (``serving.state.draining_grace``: a connection accepted just
before the listener closed); it tells it about every ``data_received`` and completed
response from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Exchange(Protocol):
    """What the drain reads and changes of a connection's current request (uvicorn's
    ``RequestResponseCycle``, the native engine's ``Cycle``)."""

    response_complete: bool
    keep_alive: bool


class ConnectionDrain:
    """The drain of one connection (see the module docstring)."""

    __slots__ = ("_current", "_loop", "_timer", "_transport", "grace")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.BaseTransport,
        current: Callable[[], Exchange | None],
        grace: float,
    ) -> None:
        self._loop = loop
        self._transport = transport
        #: The connection's current request, read when the drain has to decide.
        self._current = current
        self._timer: asyncio.TimerHandle | None = None
        self.grace = grace

    def begin(self) -> None:
        """The server started draining."""
        exchange = self._current()
        if exchange is not None and not exchange.response_complete:
            # In flight: let it finish, and close after its reply.
            exchange.keep_alive = False
            return
        self._arm()

    def after_data(self) -> None:
        """Bytes arrived (the protocol has parsed them)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        exchange = self._current()
        if exchange is not None and not exchange.response_complete:
            # A request arrived while draining: answer it, with Connection: close.
            exchange.keep_alive = False
        else:
            # Part of a request (or stray bytes): the connection is not idle, so the
            # grace starts over; it only closes after `grace` of silence.
            self._arm()

    def after_response(self) -> None:
        """A response was completed: the connection may now be idle."""
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and not self._transport.is_closing():
            self._timer = self._loop.call_later(self.grace, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._transport.is_closing():
            return
        exchange = self._current()
        if exchange is not None and not exchange.response_complete:
            exchange.keep_alive = False
            return
        self._transport.close()
