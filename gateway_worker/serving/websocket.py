"""The WebSocket protocol both engines hand upgraded connections to (when
``api.webdis_websockets`` is on): uvicorn's sans-I/O ``websockets`` protocol, with the
close a draining worker sends.

uvicorn's own ``shutdown()`` (called by ``Server.shutdown`` on every connection when the
worker drains) already closes an open WebSocket with code 1012, "service restart": the
standard "reconnect" signal. This subclass only adds the reason text, which some client
libraries show or log, and tells the app the same. Everything else (handshake, frames,
flow control, pings every ``server.stream_heartbeat_seconds``, closing a client that does
not answer one in time) is uvicorn's, on the ``websockets`` package.

Imported only when WebSockets are on: loading ``websockets`` costs worker boot time.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

#: The close a draining worker sends (RFC 6455 7.4.1 registry: "Service Restart").
SERVICE_RESTART = 1012
SERVICE_RESTART_REASON = "service restart"


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol; a drain closes with 1012 "service restart"."""

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and not self.transport.is_closing():
            self.stop_keepalive()
            self.queue.put_nowait(
                {
                    "type": "websocket.disconnect",
                    "code": SERVICE_RESTART,
                    "reason": SERVICE_RESTART_REASON,
                }
            )
            self.conn.send_close(SERVICE_RESTART, SERVICE_RESTART_REASON)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
        # With close_sent set, uvicorn's shutdown just closes the transport.
        super().shutdown()
