"""The gateway's own HTTP/1.1 client to the engine (llmops.gateway.upstream), on real sockets.

The server here is a scripted asyncio server that answers each request with the bytes a test
gives it, so the framings and failures an engine can produce are exact: chunked and sized
bodies, an answer cut by silence, an idle connection closed under the client, bytes that are
not HTTP. The proxy's behaviour end to end (streaming, 504, 502, disconnects) is in
test_gateway.py against the TGI simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from llmops.gateway.upstream import UpstreamPool, UpstreamTimeout, UpstreamUnavailable


@dataclass
class Engine:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@asynccontextmanager
async def engine(*answers: bytes | Callable[[asyncio.StreamWriter], object]) -> AsyncIterator[Engine]:
    """A server that answers its n-th request (over all connections) with `answers[n]`: bytes to
    send, or a coroutine function given the writer."""
    state = Engine("")
    script = iter(answers)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                state.requests.append(await _read_request(reader))
                answer = next(script)
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                else:
                    await answer(writer)  # type: ignore[misc]
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


def ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


async def test_keep_alive_reuses_one_connection_and_sends_one_request_each() -> None:
    async with engine(ok(b"one"), ok(b"two", b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n")) as e:
        pool = UpstreamPool(e.url, read_timeout=5)
        first = await pool.request("POST", "/generate?x=1", [("Content-Type", "application/json")], b"{}")
        assert (first.status, await first.read()) == (200, b"one")
        first.release()
        second = await pool.request("GET", "/info", [], b"")
        assert await second.read() == b"two"
        assert [v for k, v in second.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
        second.release()
        assert e.connections == 1
        assert e.requests[0].startswith(b"POST /generate?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert e.requests[0].endswith(b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        assert b"Content-Length" not in e.requests[1]
        pool.close()


async def test_a_chunked_answer_comes_decoded_piece_by_piece_as_it_is_sent() -> None:
    sent_second = asyncio.Event()

    async def stream(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
        await writer.drain()
        await sent_second.wait()  # the first piece must reach the client before the rest exists
        writer.write(b"6;ext=1\r\ndata:2\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()

    async with engine(stream, ok(b"after")) as e:
        pool = UpstreamPool(e.url, read_timeout=5)
        answer = await pool.request("POST", "/generate_stream", [], b"{}")
        assert answer.chunked and answer.content_length is None
        pieces = []
        async for piece in answer.pieces():
            pieces.append(piece)
            sent_second.set()
        assert pieces == [b"data:1", b"data:2"]
        answer.release()
        again = await pool.request("GET", "/info", [], b"")  # the trailer was consumed: in sync
        assert await again.read() == b"after"
        assert e.connections == 1


async def test_silence_before_the_head_or_mid_body_is_a_timeout() -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def stalls(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(5)

    async with engine(silent, stalls) as e:
        pool = UpstreamPool(e.url, read_timeout=0.2)
        with pytest.raises(UpstreamTimeout):
            await pool.request("GET", "/", [], b"")
        answer = await pool.request("GET", "/", [], b"")
        with pytest.raises(TimeoutError):
            await answer.read()


async def test_an_idle_connection_the_engine_closed_is_retried_for_get_but_not_for_post() -> None:
    async def close(writer: asyncio.StreamWriter) -> None:
        writer.close()  # as an engine whose idle timeout ran out just as the request came

    async with engine(ok(b"a"), close, ok(b"b"), ok(b"c"), close) as e:
        pool = UpstreamPool(e.url, read_timeout=5)
        first = await pool.request("GET", "/info", [], b"")
        await first.read()
        first.release()
        retried = await pool.request("GET", "/info", [], b"")
        assert await retried.read() == b"b"
        retried.release()
        kept = await pool.request("POST", "/generate", [], b"{}")
        await kept.read()
        kept.release()
        # A POST may have been acted on: it is not sent twice.
        with pytest.raises(UpstreamUnavailable):
            await pool.request("POST", "/generate", [], b"{}")
        assert e.connections == 2


async def test_connection_close_and_an_unread_answer_are_not_reused() -> None:
    async with engine(ok(b"x", b"Connection: close\r\n"), ok(b"long body"), ok(b"z")) as e:
        pool = UpstreamPool(e.url, read_timeout=5)
        closing = await pool.request("GET", "/", [], b"")
        await closing.read()
        closing.release()
        unread = await pool.request("GET", "/", [], b"")
        unread.close()  # a client that went away: the answer is dropped with its connection
        last = await pool.request("GET", "/", [], b"")
        assert await last.read() == b"z"
        assert e.connections == 3


async def test_an_answer_until_close_a_head_request_and_an_interim_100() -> None:
    async def until_close(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    head_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"real")
    async with engine(until_close, head_answer, interim) as e:
        pool = UpstreamPool(e.url, read_timeout=5)
        answer = await pool.request("GET", "/", [], b"")
        assert await answer.read() == b"all of it"
        answer.release()
        head = await pool.request("HEAD", "/", [], b"")
        assert head.content_length == 100  # as declared: the GET's length
        assert await head.read() == b""  # and no body follows
        head.release()
        real = await pool.request("GET", "/", [], b"")
        assert (real.status, await real.read()) == (200, b"real")


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",
    ],
)
async def test_an_answer_that_is_not_http_is_unavailable(garbage: bytes) -> None:
    async with engine(garbage) as e:
        pool = UpstreamPool(e.url, read_timeout=5)
        with pytest.raises(UpstreamUnavailable):
            await pool.request("GET", "/", [], b"")


async def test_nothing_listening_is_unavailable_and_a_bad_url_is_refused() -> None:
    with pytest.raises(UpstreamUnavailable, match="connecting to the engine failed"):
        await UpstreamPool("http://127.0.0.1:9", read_timeout=1).request("GET", "/", [], b"")
    with pytest.raises(ValueError, match="http://host"):
        UpstreamPool("https://engine:8443", read_timeout=1)
