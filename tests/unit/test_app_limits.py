"""Body limit and request deadlines (gateway_worker.app.limits)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway_worker.app.limits import BodyTooLarge, ClientGone, RequestDeadlines, read_body


def receiver(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def test_body_in_chunks_within_limit() -> None:
    receive = receiver(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    assert asyncio.run(read_body(receive, 4, None)) == b"abcd"


def test_declared_length_over_limit_is_refused_before_reading() -> None:
    with pytest.raises(BodyTooLarge, match=r"10 bytes > server\.max_body_bytes=4"):
        asyncio.run(read_body(receiver(), 4, "10"))


def test_streamed_body_over_limit_is_refused() -> None:
    receive = receiver(
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"de", "more_body": True},
    )
    with pytest.raises(BodyTooLarge, match="more than that"):
        asyncio.run(read_body(receive, 4, None))


def test_disconnect_while_reading() -> None:
    with pytest.raises(ClientGone):
        asyncio.run(read_body(receiver({"type": "http.disconnect"}), 4, None))


def test_deadlines_cancel_only_late_requests() -> None:
    async def main() -> tuple[str, str]:
        deadlines = RequestDeadlines(0.1, resolution=0.01)

        async def request(delay: float) -> str:
            task = asyncio.current_task()
            assert task is not None
            slot = deadlines.start(task)
            try:
                await asyncio.sleep(delay)
                return "done"
            except asyncio.CancelledError:
                if deadlines.timed_out(task):
                    return "timed out"
                raise
            finally:
                deadlines.finish(slot, task)

        fast, slow = await asyncio.gather(request(0.01), request(5))
        return fast, slow

    assert asyncio.run(main()) == ("done", "timed out")
