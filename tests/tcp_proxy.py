"""A TCP proxy in the test's event loop, to take a server away from a worker and give it
back without touching the server (the machine's PostgreSQL is shared)."""

from __future__ import annotations

import asyncio
import contextlib

from trustscore_stream.embedded import free_port


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `cut()`: the port refuses connections (it is
    closed) and every open connection is reset, on both sides; `restore()` listens again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.connections = 0  # accepted while up
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()  # both sides of every connection
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def up(self) -> bool:
        return self._server is not None

    async def restore(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def cut(self) -> int:
        """Go down; returns how many open connections (client side) were reset."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        reset = len(self._clients)
        for writer in list(self._open):
            writer.transport.abort()  # RST, not FIN: a broken link, as when a network dies
        self._open.clear()
        self._clients.clear()
        if server is not None:
            await server.wait_closed()
        return reset

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._open |= {client_w, server_w}
        self._clients.add(client_w)
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            self._clients.discard(client_w)
            for writer in (client_w, server_w):
                self._open.discard(writer)
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()
