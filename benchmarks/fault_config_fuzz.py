"""Fuzzed configurations (`faults.py` scenario ``config-fuzz``).

In process, ≥ 2,000 inputs (``--quick``: 300) drawn with the hypothesis strategies of
``tests/unit/test_config_property.py`` (documents in every format, profile overlays,
ConfigMap and secrets directories, env, ``--set``, profiles) go through ``load_config``
(what `redis-gateway config validate` runs), ``peek_section`` (what `reload`/`status`
run on an invalid config) and, when valid, every rendering of `config show`. Each input
also carries fuzz canaries where a secret may be written: a secrets-dir file under a
fuzzed key, and env, ``--set`` or a line of the main document naming a secret key or a
misspelling of one, with the value plain, as JSON, as broken JSON, or as the password
of a ``redis.url``. Anything but a ``LoadedConfig`` or a ``ConfigError`` is a traceback;
a canary in an error or a rendering is a leak (the rule: a value is shown only when its
key is known and not secret, and URLs without their password).

Then ~50 of them (``--quick``: 10) go to real processes: 40 as the profile overlay and
secrets-dir files of a running gateway, reloaded (then put back and reloaded again: it
must serve as before), 10 as the whole input of a `redis-gateway run` (on a port, Redis
and runtime dir of ours, given last with ``--set``), which must exit 1 with the problems
listed or serve and stop cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from benchmarks.fault_gateway import FaultGateway
from benchmarks.fault_harness import Canaries, Row, http, poll
from benchmarks.fault_scenarios import PROBE_PATH, Suite, gateway_row
from benchmarks.gateway_process import REDIS_GATEWAY, ROOT, toml_value
from supervisor.config import ConfigError, ConfigInputs, load_config, peek_section
from supervisor.config.render import render_show
from supervisor.embedded_redis import free_port
from tests.unit.test_config_property import documents, file_names, keys, text_values

FUZZ_CANARIES = Canaries({role: f"cnry-{role}-{os.urandom(10).hex()}" for role in (
    "fuzz_secret_file", "fuzz_env", "fuzz_set", "fuzz_document")})  # fmt: skip
SECRET_KEYS = (
    "auth.jwt_secret", "redis.default_password", "auth.jwt_previous_secrets",
    "auth.api_keys", "redis.url", "redis.username",
)  # fmt: skip
# redis.username is not a secret, but a canary there only reaches it as a misspelling.
OK_RESULTS = {"committed", "invalid", "readiness_failed", "unchanged", "bind_failed", "held"}


def _misspell(key: str, where: int, how: int) -> str:
    i = where % (len(key) + 1)
    out = [key[:i] + key[i + 1 :], key[:i] + key[i : i + 1] * 2 + key[i + 1 :],
           key[:i] + "x" + key[i:], key + "s", key.replace(".", "_", 1)][how % 5]  # fmt: skip
    return out if out != key and not out.endswith("_file") else key + "t"


secret_targets = st.one_of(
    st.sampled_from(SECRET_KEYS[:5]),
    st.builds(_misspell, st.sampled_from(SECRET_KEYS), st.integers(0, 40), st.integers(0, 4)),
)


def _shape(key: str, value: str, how: int) -> str:
    """The canary as a plain string, JSON string or list, broken JSON, or a URL password
    (always, at ``redis.url``: a known key, not a secret, so only its password is)."""
    if key.replace("__", ".") == "redis.url":
        how = 4 + 5 * how
    return [
        value,
        json.dumps(value),
        json.dumps([value]),
        '[{"name": "k", "key": "' + value,
        f"redis://:{value}@127.0.0.1:{6379 if how % 2 else 'x'}/0",
    ][how % 5]


def _env_name(key: str) -> str:
    return "REDIS_GATEWAY_" + key.upper().replace(".", "__")


@dataclass
class Example:
    """One fuzzed set of inputs, as files and strings (replayable in a real process)."""

    main: tuple[str, bytes] | None
    overlay: bytes | None
    configmap: dict[str, bytes] | None
    secrets: dict[str, bytes]
    env: dict[str, str]
    overrides: list[str]
    profile: str | None

    def materialize(self, root: Path) -> ConfigInputs:
        config_path = None
        if self.main is not None:
            config_path = root / f"gateway{self.main[0]}"
            config_path.write_bytes(self.main[1])
            if self.overlay is not None:
                (root / f"gateway.{self.profile or 'dev'}{self.main[0]}").write_bytes(self.overlay)
        dirs: dict[str, Path | None] = {"cm": None, "sec": root / "sec"}
        for name, files in (("cm", self.configmap), ("sec", self.secrets)):
            if files is None:
                continue
            directory = dirs[name] = root / name
            directory.mkdir()
            for file_name, data in files.items():
                if file_name not in (".", ".."):
                    (directory / file_name).write_bytes(data)
        return ConfigInputs(
            config_path=config_path, profile=self.profile, overrides=tuple(self.overrides),
            configmap_dir=dirs["cm"], secrets_dir=dirs["sec"], env=self.env,
        )  # fmt: skip


def _valid_value(key: str, secret: str) -> object:
    """The canary as a value ``key`` accepts."""
    return {
        "auth.jwt_previous_secrets": [secret],
        "auth.api_keys": [{"name": "fuzz", "key": secret}],
        "redis.url": f"redis://:{secret}@127.0.0.1:6379/0",
    }.get(key, secret)


def _valid_shape(key: str, secret: str) -> str:
    """The same as text (env, --set): lists as JSON."""
    value = _valid_value(key, secret)
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def plausible(draw: st.DrawFn) -> Example:
    """Likely valid: each secret key holding a canary from the file, env, --set or the
    secrets dir (or unset), and at most one fuzzed line of the property test."""
    lines, env, overrides, secrets = [], {}, [], {}
    for key in SECRET_KEYS[:5]:
        where = draw(st.sampled_from(["unset", "file", "env", "set", "secrets"]))
        if where == "secrets" and key in ("auth.jwt_secret", "redis.default_password"):
            secrets[key] = FUZZ_CANARIES["fuzz_secret_file"].encode()
        elif where == "env":
            env[_env_name(key)] = _valid_shape(key, FUZZ_CANARIES["fuzz_env"])
        elif where == "set":
            overrides.append(f"{key}={_valid_shape(key, FUZZ_CANARIES['fuzz_set'])}")
        elif where != "unset":
            value = _valid_value(key, FUZZ_CANARIES["fuzz_document"])
            lines.append(f"{key} = {toml_value(value)}")
    lines.append(draw(st.just("") | st.builds("{} = {}".format, keys, text_values)))
    return Example(
        main=(".toml", "\n".join(lines).encode() + b"\n"),
        overlay=None, configmap=None, secrets=secrets, env=env, overrides=overrides,
        profile=draw(st.sampled_from([None, "dev"])),
    )  # fmt: skip


@st.composite
def noisy(draw: st.DrawFn) -> Example:
    """The property test's inputs, with a canary planted where a secret may go. Each
    random part is present in about half of the examples (else nearly none is valid)."""
    suffix = draw(st.sampled_from([".toml", ".yaml", ".json", ".txt"]))
    main = draw(st.none() | documents.map(lambda d: (suffix, d)))
    secrets = draw(st.just({}) | st.dictionaries(file_names, documents, max_size=3))
    canary_key = draw(keys)
    if canary_key.strip(".") and not canary_key.startswith("."):
        secrets[canary_key] = FUZZ_CANARIES["fuzz_secret_file"].encode()
    env = draw(st.just({}) | st.dictionaries(keys.map(_env_name), text_values, max_size=3))
    overrides = draw(st.just([]) | st.lists(
        st.one_of(st.builds("{}={}".format, keys, text_values), st.text(max_size=15)),
        max_size=3))  # fmt: skip
    if draw(st.booleans()):
        key, how = draw(secret_targets), draw(st.integers(0, 4))
        env[_env_name(key)] = _shape(key, FUZZ_CANARIES["fuzz_env"], how)
    if draw(st.booleans()):
        key, how = draw(secret_targets), draw(st.integers(0, 4))
        overrides.append(f"{key}={_shape(key, FUZZ_CANARIES['fuzz_set'], how)}")
    if main is not None and draw(st.booleans()):
        key = draw(secret_targets)
        value = json.dumps(_shape(key, FUZZ_CANARIES["fuzz_document"], 0))
        line = f"\n{key}: {value}\n" if suffix == ".yaml" else f"\n{key} = {value}\n"
        main = (suffix, main[1] + line.encode())
    return Example(
        main=main,
        overlay=draw(st.none() | st.none() | documents),
        configmap=draw(st.none() | st.none() | st.dictionaries(file_names, documents, max_size=3)),
        secrets=secrets, env=env, overrides=overrides,
        profile=draw(st.sampled_from([None, "dev", "staging", "prod"])),
    )  # fmt: skip


@dataclass
class FuzzTally:
    examples: int = 0
    valid: int = 0
    invalid: int = 0
    texts: dict[str, str] = field(default_factory=dict)  # what to scan, by name
    crashes: list[str] = field(default_factory=list)
    kept: list[tuple[bool, Example]] = field(default_factory=list)


def check_in_process(example: Example, tally: FuzzTally) -> None:
    """``load_config`` and friends on one example; what they say goes into the tally."""
    tally.examples += 1
    n = tally.examples
    with tempfile.TemporaryDirectory(prefix="rg-cfz-") as tmp:
        inputs = example.materialize(Path(tmp))
        try:
            peek_section(inputs, "supervisor.control_socket")
        except ConfigError:
            pass
        except Exception as exc:
            tally.crashes.append(f"peek_section: {type(exc).__name__}: {exc}"[:300])
        try:
            loaded = load_config(inputs)
        except ConfigError as exc:
            tally.invalid += 1
            tally.texts[f"config error #{n}"] = "\n".join(str(p) for p in exc.problems)
            valid = False
        except Exception as exc:
            tally.crashes.append("".join(traceback.format_exception(exc))[-600:])
            return
        else:
            tally.valid += 1
            valid = True
            shown = [
                render_show(loaded, fmt=fmt, sources=sources)
                for fmt in ("toml", "json")
                for sources in (False, True)
            ]
            tally.texts[f"config show #{n}"] = "\n".join([*shown, *loaded.warnings])
    tally.kept.append((valid, example))


def run_in_process(count: int, tally: FuzzTally) -> None:
    @settings(
        max_examples=count, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(example=st.one_of(noisy(), plausible()))
    def fuzz(example: Example) -> None:
        check_in_process(example, tally)

    fuzz()


def pick(tally: FuzzTally, count: int) -> list[Example]:
    """``count`` examples spread over the run, valid and invalid ones in turn (while
    there are valid ones)."""
    valid = [e for ok, e in tally.kept if ok]
    invalid = [e for ok, e in tally.kept if not ok]
    valid = valid[:: max(1, len(valid) // max(1, count // 2))]
    invalid = invalid[:: max(1, len(invalid) // max(1, count - min(len(valid), count // 2)))]
    chosen: list[Example] = []
    while len(chosen) < count and (valid or invalid):
        for pool in (valid, invalid):
            if pool and len(chosen) < count:
                chosen.append(pool.pop(0))
    return chosen


def config_fuzz(suite: Suite) -> Row:
    row = Row("fuzzed configs")
    count, reloads, runs = (300, 8, 2) if suite.quick else (4000, 40, 10)
    tally = FuzzTally()
    began = time.monotonic()
    run_in_process(count, tally)
    row.figures |= {
        "in process": tally.examples,
        "valid": tally.valid,
        "invalid": tally.invalid,
        "in process (s)": round(time.monotonic() - began, 1),
    }
    row.requests += tally.examples
    row.tracebacks += len(tally.crashes)
    row.problems += [f"traceback in process: {c}" for c in tally.crashes[:5]]
    # Leaks only: errors quote fuzzed values (even "Traceback"); crashes are counted above.
    row.scan(tally.texts, [FUZZ_CANARIES, suite.canaries], tracebacks=False)
    if tally.examples < count:
        row.problems.append(f"only {tally.examples} fuzzed configs of {count}")
    chosen = pick(tally, reloads + runs)
    with gateway_row(suite, row, name="config-fuzz") as fgw:
        results = [_reload_one(fgw, example, i, row) for i, example in enumerate(chosen[runs:])]
        row.figures["reloads by result"] = {r: results.count(r) for r in sorted(set(results))}
    exits = [_run_one(suite, example, i, row) for i, example in enumerate(chosen[:runs])]
    row.figures["runs by exit code"] = {str(c): exits.count(c) for c in sorted(set(exits))}
    row.judge(recovery_target=None)
    return row


def _reload_one(fgw: FaultGateway, example: Example, i: int, row: Row) -> str:
    """The example's main document as the profile overlay, its secrets files in the
    secrets dir; reload; then everything put back, reload, and serving as before."""
    overlay = fgw.gw.config_path.with_name("gateway.dev.toml")
    saved = {p: p.read_bytes() for p in fgw.secrets_dir.iterdir()}
    if example.main is not None:
        overlay.write_bytes(example.main[1])
    for name, data in example.secrets.items():
        if name not in (".", ".."):
            (fgw.secrets_dir / name).write_bytes(data)
    outcome, _ = fgw.gw.reload()
    poll(lambda: not fgw.gw.status()["reload_in_progress"], 30, "the drain", 0.02)
    row.scan({f"fuzz reload reply #{i}": json.dumps(outcome)}, [FUZZ_CANARIES])
    if outcome["result"] not in OK_RESULTS:
        row.problems.append(f"fuzz reload #{i}: {outcome['result']}: {outcome}"[:300])
    overlay.unlink(missing_ok=True)
    for path in fgw.secrets_dir.iterdir():
        if path not in saved:
            path.unlink()
    for path, data in saved.items():
        path.write_bytes(data)
    back, _ = fgw.gw.reload()
    # Until the old generation is gone, a new connection may still reach one of its
    # workers, with the fuzzed config (reload answers at the commit, before the drain).
    poll(lambda: not fgw.gw.status()["reload_in_progress"], 30, "the drain", 0.02)
    serving = http(fgw.port, PROBE_PATH, fgw.auth)[0] == 200
    if back["result"] not in ("committed", "unchanged") or not serving:
        row.problems.append(f"after fuzz reload #{i}, putting the config back: {back}"[:300])
    return str(outcome["result"])


def _run_one(suite: Suite, example: Example, i: int, row: Row) -> int:
    """The example as the whole input of `redis-gateway run` (our port, Redis, dirs last)."""
    workdir = suite.root / f"config-fuzz-run-{i}"
    workdir.mkdir()
    inputs = example.materialize(workdir)
    port = free_port()
    ours = [
        f"server.port={port}", "server.host=127.0.0.1", "observability.metrics.enabled=false",
        f"supervisor.control_socket={workdir}/ctl.sock", "supervisor.watch_config=false",
        f"supervisor.state_dir={workdir}/state", f"redis.url={suite.redis.url}",
        f"redis.default_password={suite.redis.password}", "redis.username=null",
    ]  # fmt: skip
    args = [REDIS_GATEWAY, "run"]
    if inputs.config_path is not None:
        args += ["--config", str(inputs.config_path)]
    if example.profile:
        args += ["--profile", example.profile]
    if inputs.configmap_dir is not None:
        args += ["--configmap-dir", str(inputs.configmap_dir)]
    args += ["--secrets-dir", str(inputs.secrets_dir)]
    for override in [*example.overrides, *ours]:
        args += ["--set", override]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_GATEWAY_")}
    env |= {**example.env, "XDG_RUNTIME_DIR": str(workdir), "TMPDIR": str(workdir)}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        start_new_session=True,
    )  # fmt: skip
    code = _wait_run(proc, port)
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.stdout:
        proc.stdout.close()
    (workdir / "output.txt").write_text(output)
    try:  # anything left in its session is a leaked process
        os.killpg(proc.pid, signal.SIGKILL)
        row.left([f"fuzz run #{i}: a process outlived its supervisor"])
    except ProcessLookupError:
        pass
    row.left([f"fuzz run #{i}: {p.name}" for p in workdir.glob("redis-gateway-*")])
    row.scan({f"fuzz run #{i}": output}, [FUZZ_CANARIES, suite.canaries])
    if code not in (0, 1):
        row.problems.append(f"fuzz run #{i} exited {code}: {output[-300:]}")
    elif code == 1 and "configuration invalid" not in output and "boot" not in output:
        row.problems.append(f"fuzz run #{i} exited 1 without saying why: {output[-300:]}")
    return code


def _wait_run(proc: subprocess.Popen[bytes], port: int) -> int:
    """Its exit code; if it serves instead, SIGTERM it once it does (0 = stopped cleanly)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        if http(port, "/healthz", timeout=0.5)[0] == 200:
            proc.send_signal(signal.SIGTERM)
            return proc.wait(30)
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return -9
