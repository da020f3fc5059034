"""The supervisor's services: each one implements only the lifecycle events it acts on
(``supervisor.hooks``); ``supervisor.builder`` wires who hears which event.

* ``logs.LogService``: supervisor logging reconfigured on commit, reopened on SIGUSR1;
* ``watcher.WatcherService``: the config watcher (start, follow reloads, acknowledge);
* ``metrics.MetricsService``: the Prometheus endpoint and the supervisor's series;
* ``systemd.SystemdService``: sd_notify (READY, RELOADING, STOPPING, STATUS, watchdog);
* ``memory.MemoryTrim``: hands freed heap back to the OS after boot and reloads;
* ``exposure.ExposureWarning``: warns when auth is off beyond loopback (start, commit).

The builder (``supervisor.builder``) creates them and fans the hooks out to them in
that order. Watcher and metrics are hot-reloadable like the rest of the config.
"""


class ServiceError(Exception):
    """A service cannot start at start-up (the builder turns it into StartupError)."""
