"""The builder's wiring of lifecycle events: a service that implements an event's
method hears that event (a forgotten registration would silently never run)."""

from __future__ import annotations

import dataclasses

from supervisor.builder import _listeners_of
from supervisor.hooks import FanOut, Listeners
from supervisor.services.embedded_redis import EmbeddedRedisService
from supervisor.services.exposure import ExposureWarning
from supervisor.services.logs import LogService
from supervisor.services.memory import MemoryTrim
from supervisor.services.metrics import MetricsService
from supervisor.services.state import StateService
from supervisor.services.systemd import SystemdService
from supervisor.services.watcher import WatcherService

EVENTS = [f.name for f in dataclasses.fields(Listeners)]


def test_every_implemented_event_is_wired() -> None:
    # No I/O (no __init__): only their types count.
    listeners = _listeners_of(
        logs=object.__new__(LogService),
        embedded=object.__new__(EmbeddedRedisService),
        watcher=object.__new__(WatcherService),
        metrics=object.__new__(MetricsService),
        systemd=object.__new__(SystemdService),
        recorder=object.__new__(StateService),
        exposure=object.__new__(ExposureWarning),
    )
    wired_objects = {id(h): h for event in EVENTS for h in getattr(listeners, event)}
    # Every service handed over (and the memory trim) hears something.
    assert len(wired_objects) == 8
    assert any(isinstance(h, MemoryTrim) for h in wired_objects.values())
    for service in wired_objects.values():
        for event in EVENTS:
            implemented = callable(getattr(type(service), event, None))
            wired = any(h is service for h in getattr(listeners, event))
            assert implemented == wired, (type(service).__name__, event)


def test_fan_out_calls_each_event_in_order() -> None:
    heard: list[str] = []

    class Ear:
        def __init__(self, name: str) -> None:
            self.name = name

        def stopping(self) -> None:
            heard.append(self.name)

    FanOut(Listeners(stopping=[Ear("a"), Ear("b")])).stopping()
    FanOut().stopping()  # nobody listening: nothing happens
    assert heard == ["a", "b"]
