"""The config pipe's line (``gateway_worker.contract``): the supervisor's side writes
the worker's generation and slot with its config, the worker's side reads them back
(the generation labels the worker's stream metrics)."""

from __future__ import annotations

import os

import pytest

from gateway_worker.__main__ import parse_config
from gateway_worker.config import Config
from gateway_worker.contract import decode_config
from gateway_worker.observability.metrics import RequestMetrics
from gateway_worker.pipes import read_config_line
from supervisor.workers.process import WorkerProcess


def test_the_worker_reads_the_generation_the_supervisor_sent() -> None:
    config = Config.model_validate({"server": {"port": 7379}})
    worker = WorkerProcess(generation=7, slot=2)
    read_end, write_end = os.pipe()
    try:
        worker._config_fd = write_end  # the pipe spawn() would have made
        worker.send_config(config)
        line = read_config_line(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert line is not None
    message = decode_config(line)
    assert (message["generation"], message["slot"]) == (7, 2)
    assert parse_config(message["config"]).server.port == 7379


def test_stream_metrics_carry_the_generation() -> None:
    metrics = RequestMetrics()
    metrics.set_generation(7)
    metrics.stream_opened("upstash_sse")
    sample = metrics.registry.get_sample_value
    assert sample("redis_gateway_streams_open", {"kind": "upstash_sse", "generation": "7"}) == 1
    metrics.stream_closed("upstash_sse", "drain")
    assert sample("redis_gateway_streams_open", {"kind": "upstash_sse", "generation": "7"}) == 0
    closed = {"kind": "upstash_sse", "reason": "drain"}
    assert sample("redis_gateway_streams_closed_total", closed) == 1


@pytest.mark.parametrize(
    "line",
    [
        b"[1, 2]\n",
        b'{"server": {}}\n',
        b'{"generation": "7", "slot": 0, "config": {}}\n',
        b'{"generation": 3, "slot": 0, "config": []}\n',
    ],
)
def test_a_malformed_line_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError, match="config message"):
        decode_config(line)
