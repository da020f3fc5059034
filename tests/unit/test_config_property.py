"""Random and malformed inputs to every layer: a LoadedConfig or a ConfigError, nothing else."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_worker.config import Config, dump_redacted
from supervisor.config import (
    ConfigError,
    ConfigInputs,
    LoadedConfig,
    fingerprint_inputs,
    load_config,
)
from supervisor.config.sources import flatten

CANARY = "canary-prop-5b2f0e9d7c"
KEYS = [".".join(p) for p, _ in flatten(dump_redacted(Config()))] + [
    "auth.jwt_secret_file", "redis.default_password_file", "auth.api_keys", "nope", "server",
    "profile", "server.cors", "auth.api_keys.0.key",
]

text_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0", "-1", "70000", "true", "null", "[]", "{}", "[1", '"x"', "1e999",
                     '["*"]', '[{"name": "a", "key": "0123456789abcdef"}]', "/nonexistent",
                     "redis://h:1", "DEBUG", "prod", "nan"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(string.ascii_lowercase + "._", max_size=20))
documents = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda k, v: f"{k} = {v}\n".encode(), keys, text_values),
    st.builds(lambda k, v: f"[{k}]\nport = {v}\n".encode(), keys, text_values),
    st.sampled_from([b"server:\n  port: [1\n", b'{"server": 1}', b"- 1\n", b"\xff\xfe",
                     b"[server]\nport = 1\n[server]\n", b"a: !!python/object:os.system x\n"]),
)
file_names = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    main=st.none() | st.tuples(st.sampled_from([".toml", ".yaml", ".json", ".txt"]), documents),
    overlay=st.none() | documents,
    configmap=st.none() | st.dictionaries(file_names, documents, max_size=4),
    secrets=st.none() | st.dictionaries(file_names, documents, max_size=3),
    env=st.dictionaries(keys.map(lambda k: "REDIS_GATEWAY_" + k.upper().replace(".", "__")),
                        text_values, max_size=4),
    overrides=st.lists(
        st.one_of(st.builds("{}={}".format, keys, text_values), st.text(max_size=15)), max_size=4),
    profile=st.sampled_from([None, "dev", "staging", "prod"]),
    canary_key=keys,
)
def test_any_input_gives_config_or_config_error(
    main: tuple[str, bytes] | None, overlay: bytes | None, configmap: dict[str, bytes] | None,
    secrets: dict[str, bytes] | None, env: dict[str, str], overrides: list[str],
    profile: str | None, canary_key: str,
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
        inputs = ConfigInputs(config_path=config_path, profile=profile, overrides=tuple(overrides),
                              configmap_dir=dirs["cm"], secrets_dir=dirs["sec"], env=env)
        assert isinstance(fingerprint_inputs(inputs), str)
        try:
            result = load_config(inputs)
        except ConfigError as exc:
            assert exc.problems, "a ConfigError always names at least one problem"
            assert all("\n" not in str(p) for p in exc.problems)
            assert CANARY not in str(exc)
        else:
            assert isinstance(result, LoadedConfig)
            assert result.config.profile == (profile or result.config.profile)
