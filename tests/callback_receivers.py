"""Callback receivers on 127.0.0.1 that answer at the level of bytes, hostile ones included
(tests/test_callback_delivery.py, tests/test_cluster_guarantees.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

CHUNK = b"x" * 65536


def _read_request(conn: socket.socket) -> bytes:
    """One PUT read off ``conn``: its body (by its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise ConnectionError("the client hung up mid-request")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return body


class RawReceiver:
    """A receiver that reads each request, then lets ``answer`` write to the socket until
    the client hangs up; keeps the bodies it got and counts the bytes it managed to send."""

    def __init__(self, answer: Callable[[RawReceiver, socket.socket], None]) -> None:
        self.bodies: list[dict] = []
        self.sent = 0
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/callback"
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def requests(self) -> int:
        return len(self.bodies)

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
                self.bodies.append(json.loads(_read_request(conn)))
                self._answer(self, conn)
            except OSError:
                pass  # the client hung up: what a bounded delivery does

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self._listener.close()


def ok(receiver: RawReceiver, conn: socket.socket) -> None:
    """200, at once."""
    receiver.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


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
