"""The gateway's HTTP/1.1 client to the engine: keep-alive connections on asyncio protocols.

The engine listens on localhost in the same pod, speaks plain HTTP/1.1 and is the only server
this client talks to, so it needs a small part of what a general client does: no TLS, proxies,
redirects, cookies or decompression. aiohttp's ClientSession did all of those on every request
and was about a third of the gateway's CPU; this does the one exchange a proxy needs:

    pool = UpstreamPool("http://127.0.0.1:8080", read_timeout=300)
    answer = await pool.request("POST", "/generate", headers, body)   # the head is in
    async for piece in answer.pieces(): ...                            # the body as it arrives
    answer.release()   # whole body read: the connection goes back to the pool (else close())

Timeouts, as aiohttp's sock_read had them: `read_timeout` bounds the wait for the answer's head
after the request went out and any silence in its body; a connection takes at most
`connect_timeout` to open. Errors: UpstreamTimeout (a TimeoutError) and UpstreamUnavailable (the
engine refused the connection, closed it before answering, or sent something that is not HTTP).

A reused connection the engine closed while idle can fail before any answer byte; an idempotent
request is then sent once more on a new connection (RFC 9112 §9.3.1, as aiohttp does).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import NamedTuple, cast

__all__ = ["UpstreamAnswer", "UpstreamPool", "UpstreamTimeout", "UpstreamUnavailable"]

_MAX_HEAD_BYTES = 64 * 1024
"""An answer head longer than this is not from a sane engine."""
_PAUSE_BYTES = 256 * 1024
"""Unread body bytes past which the engine's socket is not read (a slow client slows the engine's
sending down instead of filling the gateway's memory)."""
_IDLE_SECONDS = 30.0
"""An idle connection older than this is closed rather than reused (engines close idle ones too)."""
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_NO_BODY_STATUSES = frozenset({204, 304})


class UpstreamUnavailable(ConnectionError):
    """The engine could not be reached, or closed the connection, or did not speak HTTP."""


class UpstreamTimeout(TimeoutError):
    """The engine was silent for longer than the read timeout."""


class _Connection(asyncio.Protocol):
    """One connection to the engine: the bytes received and not yet read, and a waiter for more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.received_any = False
        """Whether any byte came since the current request went out (a reused connection that
        fails before that may be retried)."""
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received_any = True
        if len(self.buffer) > _PAUSE_BYTES and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading ---------------------------------------------------------------------------

    async def more(self, silence: float) -> None:
        """Wait until bytes come (or the connection ends); UpstreamTimeout after `silence` seconds
        without any (a bound on silence, not on the whole answer: hence not asyncio.timeout)."""
        if self.closed:
            raise UpstreamUnavailable("the engine closed the connection")
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(silence, _time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self, count: int) -> bytes:
        """Up to `count` of the buffered bytes, removed from the buffer."""
        piece = bytes(self.buffer[:count])
        del self.buffer[:count]
        return piece

    # -- writing and closing ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.received_any = False
        self.transport.write(data)

    def usable(self, now: float) -> bool:
        return not self.closed and now - self.idle_since < _IDLE_SECONDS and not self.buffer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("the engine was silent for too long"))


class UpstreamAnswer:
    """The engine's answer once its head is in: status, headers, and the body to read."""

    def __init__(
        self,
        pool: UpstreamPool,
        connection: _Connection,
        head: _Head,
        bodiless: bool,
        silence: float,
    ) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        """The answer's header lines in order, names as the engine spelled them."""
        self._pool = pool
        self._connection = connection
        self._silence = silence
        fields = {name.lower(): value for name, value in head.headers}
        self.content_type = fields.get("content-type", "")
        self.bodiless = bodiless
        """No body follows the head (HEAD, 204, 304), whatever its headers say."""
        self.chunked = not bodiless and "chunked" in fields.get("transfer-encoding", "").lower()
        length = fields.get("content-length")
        self.content_length = None if self.chunked or length is None else _length(length)
        """As the engine declared it (a HEAD answer's is the GET's)."""
        self._reusable = _keeps_alive(fields, head.http10) and (
            bodiless or self.chunked or self.content_length is not None
        )
        self._done = bodiless

    async def read(self) -> bytes:
        """The whole body."""
        connection = self._connection
        if self.bodiless:
            return b""
        if self.content_length is not None and len(connection.buffer) >= self.content_length:
            self._done = True  # all of it came with the head: the common case of a short answer
            return connection.take(self.content_length)
        return b"".join([piece async for piece in self.pieces()])

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body, decoded from its framing, in pieces as they arrive."""
        if self.bodiless:
            return
        if self.chunked:
            async for piece in self._chunked():
                yield piece
        elif self.content_length is not None:
            async for piece in self._sized(self.content_length):
                yield piece
        else:
            async for piece in self._until_closed():
                yield piece
        self._done = True

    async def _sized(self, remaining: int) -> AsyncIterator[bytes]:
        connection = self._connection
        while remaining:
            if not connection.buffer:
                await connection.more(self._silence)
                continue
            piece = connection.take(remaining)
            remaining -= len(piece)
            yield piece

    async def _until_closed(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            if connection.buffer:
                yield connection.take(len(connection.buffer))
            elif connection.closed:
                return
            else:
                try:
                    await connection.more(self._silence)
                except UpstreamUnavailable:
                    return  # closing is how this body ends

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            size = _chunk_size(await self._line())
            if size == 0:
                while await self._line():
                    pass  # trailers (none expected from an engine) up to the blank line
                return
            async for piece in self._sized(size):
                yield piece
            if await self._line():
                raise UpstreamUnavailable("the engine's chunk did not end with CRLF")

    async def _line(self) -> bytes:
        connection = self._connection
        while (end := connection.buffer.find(b"\r\n")) < 0:
            if len(connection.buffer) > _MAX_HEAD_BYTES:
                raise UpstreamUnavailable("the engine sent an overlong line")
            await connection.more(self._silence)
        line = connection.take(end)
        del connection.buffer[:2]
        return line

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool if it can carry another."""
        if self._done and self._reusable and not self._connection.buffer:
            self._pool.put_back(self._connection)
        else:
            self._connection.close()

    def close(self) -> None:
        """Drop the connection (an answer not read to its end: the engine stops generating)."""
        self._connection.close()


class UpstreamPool:
    """Keep-alive connections to one engine, opened as needed and reused most recent first."""

    def __init__(self, base_url: str, *, read_timeout: float, connect_timeout: float = 5.0) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the engine's URL must be http://host[:port], got {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self.prefix = url.path.rstrip("/")
        self._host_header = f"Host: {url.netloc}\r\n".encode("latin-1")
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        silence: float | None = None,
    ) -> UpstreamAnswer:
        """Send one request (`target`: path and query) and wait for the answer's head; `silence`
        (default: the read timeout) bounds that wait and each silence in the body."""
        silence = self.read_timeout if silence is None else silence
        data = self._encode(method, target, headers, body)
        connection, reused = await self._connection()
        try:
            return await self._exchange(connection, method, data, silence)
        except UpstreamUnavailable:
            if not (reused and method in _IDEMPOTENT and not connection.received_any):
                raise
        connection, _ = await self._fresh()  # the idle connection had been closed by the engine
        return await self._exchange(connection, method, data, silence)

    def _encode(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"{method} {self.prefix}{target} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        for name, value in headers:
            if "\r" in value or "\n" in value:
                raise ValueError(f"the header {name} has a line break in its value")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        lines.append(body)
        return b"".join(lines)

    async def _exchange(
        self, connection: _Connection, method: str, data: bytes, silence: float
    ) -> UpstreamAnswer:
        try:
            connection.send(data)
            head = await _read_head(connection, silence)
            while 100 <= head.status < 200:  # an interim answer (100 Continue): the real one follows
                head = await _read_head(connection, silence)
        except BaseException:
            connection.close()
            raise
        bodiless = method == "HEAD" or head.status in _NO_BODY_STATUSES
        return UpstreamAnswer(self, connection, head, bodiless, silence)

    async def _connection(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now):
                return connection, True
            connection.close()
        return await self._fresh()

    async def _fresh(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(lambda: _Connection(loop), self.host, self.port)
        except TimeoutError:
            raise UpstreamUnavailable("connecting to the engine timed out") from None
        except OSError as exc:
            raise UpstreamUnavailable(f"connecting to the engine failed: {exc.strerror or exc}") from exc
        return connection, False

    def put_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class _Head(NamedTuple):
    status: int
    reason: str
    headers: list[tuple[str, str]]
    http10: bool
    """An HTTP/1.0 answer: its connection is not kept unless it says keep-alive."""


async def _read_head(connection: _Connection, silence: float) -> _Head:
    """The status line and header lines of the next answer on `connection`."""
    buffer = connection.buffer
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > _MAX_HEAD_BYTES:
            raise UpstreamUnavailable("the engine's answer head is too long")
        await connection.more(silence)
    head = connection.take(end).decode("latin-1")
    del buffer[:4]
    status_line, *lines = head.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isascii() and code.isdigit()) or len(code) != 3:
        raise UpstreamUnavailable("the engine did not answer in HTTP/1.x")
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise UpstreamUnavailable("the engine sent a malformed header line")
        headers.append((name, value.strip()))
    return _Head(int(code), reason, headers, version == "HTTP/1.0")


def _keeps_alive(fields: dict[str, str], http10: bool) -> bool:
    """HTTP/1.1 keeps a connection open unless told to close it; HTTP/1.0 only when told to keep it."""
    said = fields.get("connection", "").lower()
    return "keep-alive" in said if http10 else "close" not in said


def _length(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise UpstreamUnavailable("the engine sent an invalid Content-Length")
    return int(value)


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    try:
        return int(size, 16)
    except ValueError:
        raise UpstreamUnavailable("the engine sent an invalid chunk size") from None
