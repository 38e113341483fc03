"""One callback delivery against hostile receivers on 127.0.0.1: one that trickles its answer a
byte a second, one that answers with a body without end. A try ends within its deadline
either way (a failed try when no 2xx status came), and reads no body."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

from conftest import slow

from execbox.submissions.callbacks import CallbackSender

DEADLINE_S = 2.0
CHUNK = b"x" * 65536


def _read_request(conn: socket.socket) -> None:
    """Reads one PUT (headers and its Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)


class RawReceiver:
    """A receiver that reads each request, then lets ``answer`` write to the socket until
    the client hangs up; counts the requests and the bytes it managed to send."""

    def __init__(self, answer: Callable[[RawReceiver, socket.socket], None]) -> None:
        self.requests = 0
        self.sent = 0
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/callback"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                _read_request(conn)
                self.requests += 1
                self._answer(self, conn)
            except OSError:
                pass  # the client hung up: what a bounded delivery does

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self._listener.close()


def trickle(receiver: RawReceiver, conn: socket.socket) -> None:
    """A byte a second, well within httpx's timeout for each read: the headers never end."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 100_000:
        receiver.send(conn, bytes([byte]))
        time.sleep(1)


def endless(status: str) -> Callable[[RawReceiver, socket.socket], None]:
    """``status``, then a chunked body as fast as the client takes it, without end."""

    def answer(receiver: RawReceiver, conn: socket.socket) -> None:
        receiver.send(conn, f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        while True:
            receiver.send(conn, chunk)

    return answer


async def _deliver(url: str, max_tries: int = 1) -> tuple[bool, float]:
    """``send`` to ``url`` with a 2 s deadline per try; whether delivered, and how long it
    took (the test gives up on it after a minute: the unbounded delivery never returns)."""
    sender = CallbackSender(
        allow_private=True, timeout_s=DEADLINE_S, max_tries=max_tries, retry_delay_s=0.1
    )
    started = time.monotonic()
    try:
        delivered = await asyncio.wait_for(sender.send(url, {"id": "x"}), slow(60))
    finally:
        await sender.close()
    return delivered, time.monotonic() - started


def test_a_receiver_trickling_its_answer_fails_the_try_at_its_deadline():
    receiver = RawReceiver(trickle)
    try:
        delivered, took = asyncio.run(_deliver(receiver.url, max_tries=2))
    finally:
        receiver.close()
    assert not delivered
    assert receiver.requests == 2  # two tries, each a failure
    assert took < 2 * DEADLINE_S + slow(3), f"two tries took {took:.1f} s"


def test_a_receiver_answering_an_endless_body_fails_the_try_with_the_body_unread():
    receiver = RawReceiver(endless("503 Service Unavailable"))
    try:
        delivered, took = asyncio.run(_deliver(receiver.url))
    finally:
        receiver.close()
    assert not delivered
    assert receiver.requests == 1
    assert took < DEADLINE_S + slow(3), f"the try took {took:.1f} s"
    # What got out before the client hung up fits in the sockets' buffers: nothing read it.
    assert receiver.sent < 32 * 2**20, f"the receiver sent {receiver.sent} bytes"


def test_a_2xx_status_is_a_delivery_whatever_body_follows():
    receiver = RawReceiver(endless("200 OK"))
    try:
        delivered, took = asyncio.run(_deliver(receiver.url, max_tries=3))
    finally:
        receiver.close()
    assert delivered
    assert receiver.requests == 1
    assert took < DEADLINE_S + slow(3)
    assert receiver.sent < 32 * 2**20
