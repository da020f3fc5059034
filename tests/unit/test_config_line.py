"""The config pipe's line (``gateway_worker.contract``): the supervisor's side writes
the worker's generation with its config, the worker's side reads both back."""

from __future__ import annotations

import json
import os

import pytest

from gateway_worker.__main__ import parse_config_line
from gateway_worker.config import Config, dump_with_secrets
from gateway_worker.contract import decode_config_line
from gateway_worker.pipes import read_config_line
from supervisor.workers.process import WorkerProcess


def test_the_worker_reads_the_generation_the_supervisor_sent() -> None:
    config = Config.model_validate({"server": {"port": 7379}})
    worker = WorkerProcess(generation=7, slot=0)
    read_end, write_end = os.pipe()
    try:
        worker._config_fd = write_end  # the pipe spawn() would have made
        worker.send_config(config)
        line = read_config_line(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert line is not None
    received, generation = parse_config_line(line)
    assert generation == 7
    assert received.server.port == 7379


def test_a_bare_config_object_is_still_accepted_as_generation_0() -> None:
    bare = json.dumps(dump_with_secrets(Config.model_validate({}))).encode() + b"\n"
    data, generation = decode_config_line(bare)
    assert generation is None
    assert parse_config_line(bare)[1] == 0
    assert "server" in data


@pytest.mark.parametrize(
    "line",
    [
        b"[1, 2]\n",
        b'{"generation": "7", "config": {}}\n',
        b'{"generation": true, "config": {}}\n',
        b'{"generation": -1, "config": {}}\n',
        b'{"generation": 3, "config": []}\n',
    ],
)
def test_a_malformed_line_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError, match="config line"):
        decode_config_line(line)
