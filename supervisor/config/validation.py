"""Validation problems: pydantic's errors and the checks beyond the schema, turned into
`Problem`s that name the key, its source (file:line, env var) and the rule, and show a
value only when its key is known and holds no secret."""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
import socket
from collections.abc import Mapping

from pydantic import ValidationError

from gateway_worker.config import Config
from supervisor.config import schema
from supervisor.config.errors import Problem, render_value
from supervisor.config.formats import Data
from supervisor.config.layers import Layer
from supervisor.config.merge import Merged
from supervisor.config.profiles import SourceOf, check_profile

_MENTIONED = re.compile(r"\b[a-z_]+(?:\.[a-z_]+)+\b")


def _rule(err: Mapping[str, Data]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "extra_forbidden":
        loc = tuple(err["loc"])
        model = schema.model_at(loc[:-1])
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        msg = "unknown key" + (
            f"; did you mean {close[0]!r}?" if close else f" (known here: {', '.join(known)})"
        )
    return msg


def validation_problems(exc: ValidationError, merged: Merged) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = schema.dotted(loc)
        origin = merged.origin_of(loc)
        if origin is not None:
            source, secret = origin.source_for(loc), origin.secret
        else:
            # A whole-section rule: name the sources of the keys the message mentions.
            mentioned = [
                m
                for m in dict.fromkeys(_MENTIONED.findall(str(err["msg"])))
                if schema.annotation_at(m.split(".")) is not None
            ]
            if not loc and mentioned:
                key = mentioned[0]
            parts = []
            for m in mentioned:
                found = merged.origin_of(tuple(m.split(".")))
                parts.append(f"{found.source if found else 'default'} ({m})")
            below = merged.origins_below(loc)
            if not parts:
                parts = list(dict.fromkeys(o.source for o in below))[:3] or ["default"]
            source = "; ".join(parts)
            secret = any(o.secret for o in below)
        value = err.get("input")
        # A section's value is never shown, so only a leaf is flagged as a secret.
        secret = (secret or schema.is_secret(loc)) and not isinstance(value, dict)
        shown = None
        # Shown only for a known key holding no secret: an unknown key is most often a
        # misspelt one (`auth.jwt_secrett`), and its value as secret as the real one's.
        if (
            not secret
            and schema.showable(loc)
            and err["type"] != "missing"
            and not isinstance(value, dict)
        ):
            shown = render_value(value)
        rule = _rule(err)
        if secret and isinstance(value, str) and value and value in rule:
            # Some validators quote the value in their message; a secret's must not be.
            rule = (
                rule.replace(value, "<hidden>")
                if len(value) >= 4
                else (f"invalid value ({err['type']})")
            )
        problems.append(Problem(key, source, rule, shown, secret=secret))
    return problems


def profile_problems_despite(exc: ValidationError, merged: Merged) -> list[Problem]:
    """Profile problems of the rest of the config, so all problems come out at once.

    The invalid leaves are dropped and the remainder validated again; if only
    leaf errors were found, the profile rules run on that remainder (ignoring
    rules about the dropped keys, which were already reported).
    """
    data = copy.deepcopy(merged.data)
    dropped: set[str] = set()
    for _attempt in range(3):
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"]]
            parent: Data = data
            for part in loc[:-1]:
                parent = parent.get(part) if isinstance(parent, dict) else None
            if not loc or not isinstance(parent, dict) or loc[-1] not in parent:
                return []
            if isinstance(parent[loc[-1]], dict):
                return []
            del parent[loc[-1]]
            dropped.add(".".join(loc[:2]) if loc[:2] == ["auth", "api_keys"] else ".".join(loc))
        try:
            config = Config.model_validate(data)
        except ValidationError as again:
            exc = again
            continue
        return [p for p in check_profile(config, source_of(merged)) if p.key not in dropped]
    return []


def source_of(merged: Merged) -> SourceOf:
    """dotted key -> (where its value came from, whether it is secret)."""

    def lookup(dotted: str) -> tuple[str, bool]:
        path = tuple(dotted.split("."))
        origin = merged.origin_of(path)
        secret = schema.is_secret(path) or bool(origin and origin.secret)
        return (origin.source if origin else "default"), secret

    return lookup


def unresolvable_hosts(config: Config, merged: Merged) -> list[Problem]:
    """Listen addresses given as names must resolve (the schema checks their syntax;
    resolving is the loader's job, so workers never wait on DNS at boot)."""
    problems = []
    lookup = source_of(merged)
    for key, host in (
        ("server.host", config.server.host),
        ("observability.metrics.host", config.observability.metrics.host),
    ):
        try:
            ipaddress.ip_address(host)
            continue
        except ValueError:
            pass
        try:
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            source, secret = lookup(key)
            why = getattr(exc, "strerror", None) or str(exc)
            problems.append(
                Problem(
                    key,
                    source,
                    f"host name does not resolve ({why})",
                    None if secret else render_value(host),
                    secret=secret,
                )
            )
    return problems


#: Layers that may be filled by the Kubernetes API source (sources.py names them so).
DIRECTORY_LAYERS = ("configmap dir", "secrets dir")
#: Sections read before those layers: `run` needs them to fill the directories.
READ_BEFORE_DIRECTORIES = ("kubernetes",)


def set_by_directories(layers: list[Layer]) -> list[Problem]:
    """Keys of ``READ_BEFORE_DIRECTORIES`` set by a ConfigMap or secrets directory: refused,
    because the API source is configured before those directories are read (they may be
    its own mirrors), so such a value could never take effect."""
    problems = []
    for layer in layers:
        if layer.name not in DIRECTORY_LAYERS:
            continue
        for path, (_value, origin) in layer.values.items():
            if path[0] in READ_BEFORE_DIRECTORIES:
                problems.append(
                    Problem(
                        ".".join(path),
                        origin.source,
                        f"the {path[0]} section is read before the ConfigMap and secrets "
                        "directories (the Kubernetes API source may fill them): set it in "
                        "the main file, a profile overlay, env or --set",
                    )
                )
    return problems
