"""Issue 8, config side: secrets never echoed, nesting bounded, inputs bounded, and the
configs that validated but then misbehaved are refused with the rule named."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway_worker.config import Config, dump_redacted
from supervisor.config import ConfigError, ConfigInputs, load_config
from supervisor.config.render import render_show

CANARY = "canary-7f3e9a1b5c2d"


def problems(**kw: Any) -> list[str]:
    kw.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_config(ConfigInputs(**kw))
    return info.value.problems


def one(**kw: Any) -> str:
    found = problems(**kw)
    assert len(found) == 1, found
    return found[0]


# -- 3. secrets printed --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: {"config_path": _write(tmp / "g.toml", f'[auth]\njwt_secrett = "{CANARY}"\n')},
        lambda tmp: {"env": {"REDIS_GATEWAY_AUTH__JWT_SECRE": CANARY}},
        lambda tmp: {"overrides": (f"auth.jwt_secre={CANARY}",)},
        lambda tmp: {"env": {"REDIS_GATEWAY_AUTH__API_KEYS": f'[{{"key":"{CANARY}'}},
        lambda tmp: {"overrides": (f'auth.api_keys=[{{"name":"a","key":"{CANARY}"',)},
    ],
)
def test_a_value_is_shown_only_for_a_known_non_secret_key(tmp_path: Path, make: Any) -> None:
    problem = one(**make(tmp_path))
    assert CANARY not in problem
    assert "auth." in problem  # still names the key and where it came from


def test_a_known_non_secret_value_is_still_shown() -> None:
    assert "(got 'eighty'" in one(overrides=("server.port=eighty",))


def test_url_passwords_are_masked_in_every_redacted_dump(tmp_path: Path) -> None:
    urls = {
        "redis": {"url": f"redis://app:{CANARY}@127.0.0.1:6379/0"},
        "observability": {"tracing": {"endpoint": f"https://u:{CANARY}@otel:4318/v1"}},
    }
    config = Config.model_validate(urls)
    dumped = dump_redacted(config)
    assert dumped["redis"]["url"] == "redis://app:**********@127.0.0.1:6379/0"
    assert CANARY not in repr(dumped)
    query = Config.model_validate({"redis": {"url": f"redis://h:1/0?password={CANARY}"}})
    assert CANARY not in repr(dump_redacted(query))
    path = _write(tmp_path / "g.toml", f'[redis]\nurl = "redis://:{CANARY}@h:1"\n')
    loaded = load_config(ConfigInputs(config_path=path, env={}))
    for fmt in ("toml", "json"):
        assert CANARY not in render_show(loaded, fmt=fmt, sources=True)


# -- 4. dev binds loopback -------------------------------------------------------------


def test_dev_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    dev = load_config(ConfigInputs(env={}))
    assert dev.config.server.host == "127.0.0.1"
    assert dev.provenance["server.host"] == "default for the dev profile"
    told = load_config(ConfigInputs(env={}, overrides=("server.host=0.0.0.0",)))
    assert told.config.server.host == "0.0.0.0"
    staging = load_config(
        ConfigInputs(env={"REDIS_GATEWAY_REDIS__URL": "redis://r:1"}, profile="staging")
    )
    assert staging.config.server.host == "0.0.0.0"


# -- 8. nesting ------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [40, 500, 5000])
@pytest.mark.parametrize(
    ("suffix", "template"),
    [
        (".toml", "a = {open}{close}\n"),
        (".json", '{{"a": {open}{close}}}'),
        (".yaml", "a: {open}{close}\n"),
    ],
)
def test_deeply_nested_documents_are_a_clear_error(
    tmp_path: Path, levels: int, suffix: str, template: str
) -> None:
    path = _write(tmp_path / f"g{suffix}", template.format(open="[" * levels, close="]" * levels))
    problem = one(config_path=path)
    assert "levels deep (at most 32)" in problem or "more than 32 levels" in problem


def test_deep_toml_inline_tables_and_dotted_keys(tmp_path: Path) -> None:
    inline = _write(tmp_path / "i.toml", "a = " + "{b = " * 400 + "1" + "}" * 400 + "\n")
    assert "nested too deeply" in one(config_path=inline)
    dotted = _write(tmp_path / "d.toml", ".".join(["a"] * 1500) + " = 1\n")
    assert "levels deep (at most 32)" in one(config_path=dotted)


def test_keys_with_1500_parts_are_a_clear_error() -> None:
    key = ".".join(["a"] * 1500)
    problem = one(overrides=(f"{key}=1",))
    assert "key has 1500 parts (at most 32)" in problem
    assert len(problem) < 600  # the key itself is cut in the message
    env_key = "REDIS_GATEWAY_" + "__".join(["A"] * 1500)
    assert "key has 1500 parts" in one(env={env_key: "1"})
    deep_value = "[" * 3000 + "]" * 3000
    assert "nested too deeply" in one(overrides=(f"server.cors.allowed_origins={deep_value}",))


# -- 9. *_file and config inputs: regular files only, bounded -------------------------------


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(one(overrides=(f"auth.jwt_secret_file={fifo}",))), daemon=True
    )
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "reading a FIFO hung"
    assert f"{fifo} is a FIFO, not a regular file" in result[0]


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("/dev/zero", "is a character device, not a regular file"),
        ("/dev/null", "is a character device, not a regular file"),
    ],
)
def test_devices_are_refused(target: str, rule: str) -> None:
    assert rule in one(overrides=(f"auth.jwt_secret_file={target}",))
    assert rule in one(config_path=Path(target))


def test_an_oversized_input_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"a" * (2 << 20))
    assert "larger than the 1048576 bytes" in one(overrides=(f"auth.jwt_secret_file={big}",))
    main = tmp_path / "g.toml"
    main.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    assert "larger than the 1048576 bytes" in one(config_path=main)


# -- 10. configs that validated, then misbehaved ----------------------------------------------


@pytest.mark.parametrize(
    ("setting", "rule"),
    [
        ("supervisor.heartbeat_timeout_seconds=1", "must be at least twice"),
        ("redis.url=redis://127.0.0.1:99999", "has an invalid port"),
        ("redis.url=redis://127.0.0.1:port", "has an invalid port"),
        ("redis.url=redis://127.0.0.1:0", "has an invalid port"),
        ("auth.jwt_secret=", "must not be empty or blank"),
        ("auth.jwt_secret=   ", "must not be empty or blank"),
        ('server.cors.allowed_headers=["X-Ok", "X-A\\r\\nX-B"]', "is not an HTTP header name"),
        ('server.cors.allowed_headers=["Bad Header"]', "is not an HTTP header name"),
        ("server.request_timeout_seconds=inf", "finite number"),
        ("server.graceful_shutdown_timeout_seconds=nan", "finite number"),
        ("redis.command_timeout_seconds=1e300", "less than or equal to 86400"),
        ("supervisor.recheck_interval_seconds=inf", "finite number"),
        ('auth.api_keys=[{"name": "a", "key": "                    "}]', "must not be blank"),
        (
            'auth.api_keys=[{"name": "a", "key": " 0123456789abcdef"}]',
            "leading/trailing whitespace",
        ),
        ("server.host=not a host", "neither an IP address nor a host name"),
        ("server.host=no-such-host.invalid", "host name does not resolve"),
        ("observability.metrics.host=-bad-", "neither an IP address nor a host name"),
        ("supervisor.control_socket=", "must not be empty"),
        ("supervisor.control_socket=/" + "x" * 120, "a Unix socket path is at most 107 bytes"),
    ],
)
def test_invalid_settings_name_their_rule(setting: str, rule: str) -> None:
    problem = one(overrides=(setting,))
    assert rule in problem
    assert problem.startswith(setting.split("=", maxsplit=1)[0].split(".", maxsplit=1)[0])


@pytest.mark.parametrize(
    "setting",
    [
        "server.host=localhost",
        "server.host=::1",
        "server.host=0.0.0.0",
        "redis.url=redis://127.0.0.1:6380/2",
        "redis.url=unix:///run/redis.sock",
        "supervisor.heartbeat_timeout_seconds=2",
        'server.cors.allowed_headers=["Authorization", "X-Custom_1"]',
    ],
)
def test_valid_settings_still_pass(setting: str) -> None:
    load_config(ConfigInputs(env={}, overrides=(setting,)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
