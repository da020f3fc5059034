"""Turning an Upstash request into Redis commands (API.md §1).

* body form: ``parse_json`` then ``command_from_json`` (one command; a pipeline or a
  transaction is a JSON array of those);
* path form: ``command_from_path`` (``/CMD/arg1/arg2``, percent-decoded segments, then a
  non-empty POST/PUT body, then each query parameter ``k=v`` except ``_token``).

JSON numbers keep their exact text (``1.50`` stays ``1.50``). Booleans, nulls and
nested values are refused with ``BadRequest`` (400): their meaning as a Redis argument
is unclear. A body nested deeper than ``json_bodies.MAX_JSON_DEPTH`` is refused before
it is parsed (400, instead of the parser's ``RecursionError``).
"""

from __future__ import annotations

import json
from typing import NoReturn
from urllib.parse import unquote_to_bytes

from gateway_worker.exchange import Request
from gateway_worker.protocols.json_bodies import MAX_JSON_DEPTH, nested_deeper_than


class BadRequest(Exception):
    """The request cannot be turned into commands; ``str()`` is the client's message."""


def _raw_number(text: str) -> str:
    return text


def _bad_constant(text: str) -> NoReturn:
    raise BadRequest(f"ERR {text} is not a valid argument")


def parse_json(body: bytes) -> object:
    """The JSON body, numbers kept as their source text; ``BadRequest`` if unreadable."""
    if not body.strip():
        raise BadRequest("ERR empty body: expected a JSON array")
    if nested_deeper_than(body):
        raise BadRequest(
            f"ERR request body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep "
            "(a command is an array of strings and numbers, a pipeline an array of commands)"
        )
    try:
        return json.loads(
            body,
            parse_int=_raw_number,
            parse_float=_raw_number,
            parse_constant=_bad_constant,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"ERR request body is not valid JSON: {exc}") from None
    except RecursionError:  # cannot happen below MAX_JSON_DEPTH; never a 500 if it does
        raise BadRequest("ERR request body nests too deeply to be parsed") from None


def command_from_json(value: object, max_arguments: int, where: str = "") -> list[bytes]:
    """One command from its JSON array (``where`` prefixes messages: "command 2: ")."""
    if not isinstance(value, list):
        raise BadRequest(f"ERR {where}expected a JSON array of strings and numbers")
    if not value:
        raise BadRequest(f"ERR {where}empty command")
    if len(value) > max_arguments:
        raise BadRequest(
            f"ERR {where}too many arguments ({len(value)} > server.max_arguments={max_arguments})"
        )
    args: list[bytes] = []
    for i, item in enumerate(value):
        # parse_int/parse_float made every number its exact source text.
        if isinstance(item, str):
            args.append(item.encode("utf-8", "surrogatepass"))
        else:
            kind = "a boolean" if isinstance(item, bool) else type(item).__name__
            if item is None:
                kind = "null"
            raise BadRequest(
                f"ERR {where}argument {i + 1} is {kind}; expected a string or a number"
            )
    return args


def command_from_path(request: Request, max_arguments: int) -> list[bytes]:
    """The command of the path form: segments, then the body, then the query."""
    segments = request.path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    if not segments or not segments[0]:
        raise BadRequest("ERR no command: POST a JSON array or use /COMMAND/arg/...")
    # The app decoded the raw path as latin-1, so encoding back gives the bytes sent.
    args = [
        unquote_to_bytes(s.encode("latin-1")) if "%" in s else s.encode("latin-1") for s in segments
    ]
    if request.method in ("POST", "PUT") and request.body:
        args.append(request.body)
    for name, value in request.query:
        if name != "_token":
            args.append(name.encode())
            args.append(value.encode())
    if len(args) > max_arguments:
        raise BadRequest(
            f"ERR too many arguments ({len(args)} > server.max_arguments={max_arguments})"
        )
    return args
