"""Command policy: denied commands, the safe and read-only sets, key-prefix confinement."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_worker.access.policy import READ_ONLY_COMMANDS, SAFE_COMMANDS, CommandPolicy
from gateway_worker.config import DANGEROUS_COMMANDS, Config
from gateway_worker.exchange import PolicyName, Principal


def make(**sections: Any) -> CommandPolicy:
    return CommandPolicy(Config.model_validate(sections))


def check(
    policy: CommandPolicy,
    *args: str,
    who: PolicyName = "all_but_dangerous",
    prefix: str | None = None,
) -> str | None:
    guard = policy.guard_for(Principal("t", policy=who, key_prefix=prefix))
    return guard([a.encode() for a in args])


def test_dangerous_commands_refused_by_default_in_any_case() -> None:
    policy = make()
    for name in DANGEROUS_COMMANDS:
        reason = check(policy, name.lower())
        assert reason is not None and "policy.denied_commands" in reason
    assert check(policy, "GET", "k") is None


@pytest.mark.parametrize(
    "args",
    [
        ("EVAL", "while true do end", "0"),
        ("EVALSHA", "0" * 40, "0"),
        ("EVAL_RO", "return 1", "0"),
        ("EVALSHA_RO", "0" * 40, "0"),
        ("FCALL", "f", "0"),
        ("FCALL_RO", "f", "0"),
        ("FUNCTION", "LOAD", "#!lua name=x"),
        ("SCRIPT", "LOAD", "return 1"),
    ],
)
def test_scripting_is_denied_by_default(args: tuple[str, ...]) -> None:
    # One script that never yields makes Redis answer BUSY to everyone (issue 8).
    reason = check(make(), *args)
    assert reason is not None and "policy.denied_commands" in reason
    assert check(make(), *args, who="all") is None


def test_policy_all_may_run_dangerous_commands() -> None:
    assert check(make(), "FLUSHALL", who="all") is None


def test_denied_list_is_configurable() -> None:
    policy = make(policy={"denied_commands": ["GET"]})
    assert check(policy, "get", "k") is not None
    assert check(policy, "FLUSHALL") is None


def test_raw_commands_false_limits_everyone_to_the_safe_set() -> None:
    policy = make(features={"raw_commands": False}, policy={"allowed_commands": ["info"]})
    reason = check(policy, "EVAL", "return 1", "0", who="all")
    assert reason is not None and "safe command set" in reason
    assert check(policy, "SET", "k", "v", who="all") is None
    assert check(policy, "INFO") is None  # added by policy.allowed_commands


def test_read_only_policy() -> None:
    policy = make()
    assert check(policy, "GET", "k", who="read_only") is None
    assert check(policy, "HGETALL", "h", who="read_only") is None
    reason = check(policy, "SET", "k", "v", who="read_only")
    assert reason is not None and "read-only" in reason


def test_safe_policy_refuses_scripting_admin_and_blocking() -> None:
    policy = make()
    for args in (("EVAL", "return 1", "0"), ("INFO",), ("BLPOP", "k", "0"), ("SUBSCRIBE", "c")):
        assert check(policy, *args, who="safe") is not None, args
    assert check(policy, "XREAD", "COUNT", "1", "STREAMS", "s", "0", who="safe") is None
    reason = check(policy, "XREAD", "BLOCK", "0", "STREAMS", "s", "$", who="safe")
    assert reason is not None and "BLOCK" in reason
    assert check(policy, "LPUSH", "l", "x", who="safe") is None


def test_sets_are_consistent() -> None:
    assert READ_ONLY_COMMANDS <= SAFE_COMMANDS
    assert not SAFE_COMMANDS & set(DANGEROUS_COMMANDS)
    assert {"EVAL", "EVALSHA", "SCRIPT", "FUNCTION", "CONFIG", "INFO"}.isdisjoint(SAFE_COMMANDS)
    assert all(name.isupper() for name in SAFE_COMMANDS)


def test_guards_are_cached_per_policy_and_prefix() -> None:
    policy = make()
    a = policy.guard_for(Principal("a", key_prefix="p:"))
    b = policy.guard_for(Principal("b", key_prefix="p:"))
    assert a is b
    assert check(policy) == "empty command"


def test_docs_list_the_command_sets() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    read_only = doc.split("### The read-only set", 1)[1].split("###", 1)[0]
    safe = doc.split("### The safe set", 1)[1].split("Why these", 1)[0]
    assert {f"`{c}`" for c in READ_ONLY_COMMANDS} <= set(read_only.replace(",", " ").split())
    extra = {f"`{c}`" for c in SAFE_COMMANDS - READ_ONLY_COMMANDS}
    assert extra == set(safe.replace(",", " ").split()) & {f"`{c}`" for c in SAFE_COMMANDS}
    assert all(name in doc for name in DANGEROUS_COMMANDS)


@pytest.mark.parametrize(
    "args",
    [
        ("SCAN", "0", "COUNT", "10001"),
        ("scan", "0", "count", "100000000"),
        ("SCAN", "0", "COUNT", "10", "COUNT", "50000"),  # Redis uses the last one
        ("SCAN", "0", "MATCH", "a:*", "COUNT", "20000", "TYPE", "hash"),
        ("HSCAN", "h", "0", "COUNT", "20000", "NOVALUES"),
        ("SSCAN", "s", "0", "COUNT", "20000"),
        ("ZSCAN", "z", "0", "COUNT", "20000"),
        ("SCAN", "0", "FUTUREOPT", "COUNT", "20000"),  # unknown option: still judged
    ],
)
def test_a_scan_count_too_large_is_refused(args: tuple[str, ...]) -> None:
    policy = make()
    for who in ("read_only", "safe", "all_but_dangerous"):
        reason = check(policy, *args, who=who)
        assert reason is not None and "above the gateway's limit of 10000" in reason, who
    assert check(policy, *args, who="all") is None  # "all" may do anything


@pytest.mark.parametrize(
    "args",
    [
        ("SCAN", "0"),
        ("SCAN", "0", "COUNT", "10000"),
        ("SCAN", "0", "MATCH", "COUNT", "COUNT", "100"),  # the pattern "COUNT"
        ("HSCAN", "h", "0", "COUNT", "500"),
        ("SCAN", "0", "COUNT", "notanumber"),  # Redis refuses it itself
        ("GET", "COUNT"),
    ],
)
def test_a_scan_count_within_the_limit_is_allowed(args: tuple[str, ...]) -> None:
    assert check(make(), *args) is None
