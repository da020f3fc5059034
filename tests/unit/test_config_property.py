"""Random and malformed inputs to every layer: a LoadedConfig or a ConfigError, nothing else."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway_worker.config import Config, dump_redacted
from supervisor.config import (
    ConfigError,
    ConfigInputs,
    LoadedConfig,
    fingerprint_inputs,
    load_config,
)
from supervisor.config.layers import flatten
from supervisor.config.render import render_show

CANARY = "canary-prop-5b2f0e9d7c"
KEYS = [".".join(p) for p, _ in flatten(dump_redacted(Config()))] + [
    "auth.jwt_secret_file",
    "redis.default_password_file",
    "auth.api_keys",
    "nope",
    "server",
    "profile",
    "server.cors",
    "auth.api_keys.0.key",
]

text_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "0",
            "-1",
            "70000",
            "true",
            "null",
            "[]",
            "{}",
            "[1",
            '"x"',
            "1e999",
            '["*"]',
            '[{"name": "a", "key": "0123456789abcdef"}]',
            "/nonexistent",
            "redis://h:1",
            "DEBUG",
            "prod",
            "nan",
        ]
    ),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(string.ascii_lowercase + "._", max_size=20))
documents = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda k, v: f"{k} = {v}\n".encode(), keys, text_values),
    st.builds(lambda k, v: f"[{k}]\nport = {v}\n".encode(), keys, text_values),
    st.sampled_from(
        [
            b"server:\n  port: [1\n",
            b'{"server": 1}',
            b"- 1\n",
            b"\xff\xfe",
            b"[server]\nport = 1\n[server]\n",
            b"a: !!python/object:os.system x\n",
        ]
    ),
)
file_names = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    main=st.none() | st.tuples(st.sampled_from([".toml", ".yaml", ".json", ".txt"]), documents),
    overlay=st.none() | documents,
    configmap=st.none() | st.dictionaries(file_names, documents, max_size=4),
    secrets=st.none() | st.dictionaries(file_names, documents, max_size=3),
    env=st.dictionaries(
        keys.map(lambda k: "REDIS_GATEWAY_" + k.upper().replace(".", "__")), text_values, max_size=4
    ),
    overrides=st.lists(
        st.one_of(st.builds("{}={}".format, keys, text_values), st.text(max_size=15)), max_size=4
    ),
    profile=st.sampled_from([None, "dev", "staging", "prod"]),
    canary_key=keys,
)
def test_any_input_gives_config_or_config_error(
    main: tuple[str, bytes] | None,
    overlay: bytes | None,
    configmap: dict[str, bytes] | None,
    secrets: dict[str, bytes] | None,
    env: dict[str, str],
    overrides: list[str],
    profile: str | None,
    canary_key: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path = None
        if main is not None:
            config_path = root / f"gateway{main[0]}"
            config_path.write_bytes(main[1])
            if overlay is not None:
                (root / f"gateway.{profile or 'dev'}{main[0]}").write_bytes(overlay)
        dirs: dict[str, Path | None] = {}
        for name, files in (("cm", configmap), ("sec", secrets)):
            if files is None:
                dirs[name] = None
                continue
            directory = dirs[name] = root / name
            directory.mkdir()
            for file_name, data in files.items():
                if file_name not in (".", ".."):
                    (directory / file_name).write_bytes(data)
        # Whatever key a secret lands on, its value never shows up in an error.
        canary_dir = root / "canary"
        canary_dir.mkdir()
        if canary_key.strip(".") and not canary_key.startswith("."):
            (canary_dir / canary_key).write_text(CANARY)
        env = {**env, "REDIS_GATEWAY_SECRETS_DIR": str(canary_dir)} if dirs["sec"] is None else env
        inputs = ConfigInputs(
            config_path=config_path,
            profile=profile,
            overrides=tuple(overrides),
            configmap_dir=dirs["cm"],
            secrets_dir=dirs["sec"],
            env=env,
        )
        assert isinstance(fingerprint_inputs(inputs), str)
        try:
            result = load_config(inputs)
        except ConfigError as exc:
            event("ConfigError")
            assert exc.problems, "a ConfigError always names at least one problem"
            assert all("\n" not in str(p) for p in exc.problems)
            assert CANARY not in str(exc)
        else:
            event("valid config")
            assert isinstance(result, LoadedConfig)
            assert result.config.profile == (profile or result.config.profile)
            # Every rendering of a valid config works and hides the secret.
            for fmt in ("toml", "json"):
                for sources in (False, True):
                    assert CANARY not in render_show(result, fmt=fmt, sources=sources)


DEFAULT_LEAVES = {
    ".".join(p): v
    for p, v in flatten(dump_redacted(Config()))
    if v is not None and p != ("profile",)
}
LAYERS = ("file", "profile", "configmap", "secrets", "env", "set")
DIRECTORY_LAYERS = frozenset({"configmap", "secrets"})
# Read before the directories (the API source fills them): refused there, see
# test_config_precedence.py::test_kubernetes_section_is_refused_in_the_directories.
NOT_IN_DIRECTORIES = ("kubernetes.",)
PROVENANCE_PREFIX = {
    "file": "file ",
    "profile": "profile file ",
    "configmap": "configmap ",
    "secrets": "secret file ",
    "env": "env ",
    "set": "--set ",
}


def _as_text(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    assignments=st.dictionaries(
        st.sampled_from(sorted(DEFAULT_LEAVES)),
        st.sets(st.sampled_from(LAYERS), min_size=1),
        max_size=12,
    )
)
def test_highest_layer_wins_for_any_assignment(assignments: dict[str, set[str]]) -> None:
    """Each key set (to a valid value) in several layers: the highest one is the source."""
    import tomli_w

    assignments = {
        key: (layers - DIRECTORY_LAYERS) | {"file"}
        if key.startswith(NOT_IN_DIRECTORIES)
        else layers
        for key, layers in assignments.items()
    }

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files: dict[str, dict[str, object]] = {"file": {}, "profile": {}}
        env: dict[str, str] = {}
        overrides: list[str] = []
        for directory in ("cm", "sec"):
            (root / directory).mkdir()
        for key, layers in assignments.items():
            value = DEFAULT_LEAVES[key]
            for layer in layers:
                if layer in files:
                    node = files[layer]
                    *parents, last = key.split(".")
                    for part in parents:
                        node = node.setdefault(part, {})  # type: ignore[assignment]
                    node[last] = value
                elif layer in ("configmap", "secrets"):
                    path = root / ("cm" if layer == "configmap" else "sec") / key
                    path.write_text(_as_text(value))
                    path.chmod(0o600)
                elif layer == "env":
                    env["REDIS_GATEWAY_" + key.upper().replace(".", "__")] = _as_text(value)
                else:
                    overrides.append(f"{key}={_as_text(value)}")
        # An empty config file is refused (issue 14): the main file always names its
        # profile, the overlay exists only when it sets something.
        (root / "gateway.toml").write_text(tomli_w.dumps(files["file"] or {"profile": "staging"}))
        if files["profile"]:
            (root / "gateway.staging.toml").write_text(tomli_w.dumps(files["profile"]))
        loaded = load_config(
            ConfigInputs(
                config_path=root / "gateway.toml",
                profile="staging",
                overrides=tuple(overrides),
                configmap_dir=root / "cm",
                secrets_dir=root / "sec",
                env={**env, "REDIS_GATEWAY_REDIS__URL": "redis://r:1"},
            )
        )
        for key, layers in assignments.items():
            top = max(layers, key=LAYERS.index)
            assert loaded.provenance[key].startswith(PROVENANCE_PREFIX[top]), (key, top)
        for fmt in ("toml", "json"):
            for sources in (False, True):
                assert render_show(loaded, fmt=fmt, sources=sources)
