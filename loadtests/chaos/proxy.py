"""A small TCP proxy for the chaos suite, in a thread of the harness (netem is not available
here): between the bot and PgBouncer it passes bytes, resets connections, swallows them (a
black hole: accepts, never answers) or delays them; in front of the bot's replicas it spreads
connections over them in turn, as a load balancer would, skipping one that refuses."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
from concurrent.futures import Future
from enum import StrEnum

HOST = "127.0.0.1"


class Mode(StrEnum):
    PASS = "pass"
    RESET = "reset"  # every connection, open or new, is reset
    BLACKHOLE = "blackhole"  # new connections are accepted and never answered; open ones stall
    LATENCY = "latency"  # each chunk waits `latency` seconds each way


class Proxy:
    def __init__(self, port: int, upstreams: list[int]) -> None:
        self.port = port
        self.upstreams = list(upstreams)
        self.mode = Mode.PASS
        self.latency = 0.0
        self._turn = itertools.count()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()  # set but in a black hole; used on the loop only

    def start(self) -> None:
        self._thread.start()
        self._call(self._start()).result(timeout=10)

    def stop(self) -> None:
        self._call(self._stop()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def set_mode(self, mode: Mode, latency: float = 0.0) -> None:
        """Switch; resetting also breaks every open connection at once."""
        self.mode = mode
        self.latency = latency
        flowing = self._flowing.clear if mode is Mode.BLACKHOLE else self._flowing.set
        self._loop.call_soon_threadsafe(flowing)
        if mode is Mode.RESET:
            self._call(self._reset_all()).result(timeout=10)

    def _call(self, coroutine: object) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, HOST, self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode is Mode.RESET:
                _reset(writer)
                return
            if self.mode is Mode.BLACKHOLE:
                while await reader.read(65536):
                    pass  # swallowed
                return
            upstream = await self._connect()
            if upstream is None:
                _reset(writer)
                return
            up_reader, up_writer = upstream
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.close()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        start = next(self._turn)
        for offset in range(len(self.upstreams)):
            port = self.upstreams[(start + offset) % len(self.upstreams)]
            with contextlib.suppress(OSError):
                return await asyncio.open_connection(HOST, port)
        return None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # in a black hole, open connections stall too
                if self.mode is Mode.LATENCY:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a broken network does, rather than a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    writer.close()
