"""CoalescingTransport: writes of one loop iteration leave in one write, in order."""

from __future__ import annotations

import asyncio
import socket

from gateway_worker.serving.write_coalescing import CoalescingTransport


def test_writes_of_one_iteration_become_one_and_close_flushes() -> None:
    async def main() -> tuple[bytes, list[int]]:
        left, right = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, left)
        sizes: list[int] = []
        original = transport.write

        def counting_write(data: bytes | bytearray | memoryview) -> None:
            sizes.append(len(data))
            original(data)

        transport.write = counting_write  # type: ignore[method-assign]
        wrapped = CoalescingTransport(transport)
        wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
        wrapped.write(b"body")
        assert sizes == []  # nothing sent yet: one write at the end of the iteration
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        wrapped.write(b"-tail")
        wrapped.close()  # flushes before closing
        right.setblocking(False)
        data = b""
        while True:
            try:
                chunk = await loop.sock_recv(right, 100)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        right.close()
        return data, sizes

    data, sizes = asyncio.run(main())
    assert data == b"HTTP/1.1 200 OK\r\n\r\nbody-tail"
    assert sizes == [23, 5]
