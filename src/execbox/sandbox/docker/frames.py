"""The attach stream of a container: demultiplexed, capped, and cut at the end markers.

Docker multiplexes stdout and stderr on one connection in frames (an 8-byte header: stream
number, three zero bytes, big-endian payload size). The run script ends each stream with a
marker line that holds a per-run nonce; stdout's marker may be followed by an archive of the
work dir (a compile stage's artifacts). Each stream keeps at most its cap plus the room a
marker needs; anything beyond is an output limit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">BxxxI")
STDOUT, STDERR = 1, 2
MARKER_ROOM = 256


@dataclass
class Stream:
    cap: int
    nonce: bytes
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False  # more than cap (+ marker room) arrived
    marker: list[bytes] | None = None  # the marker's words after the nonce, once seen
    archive: bytearray | None = None
    archive_size: int = 0
    _searched: int = 0  # where the next search for the marker starts

    @property
    def done(self) -> bool:
        if self.marker is None:
            return False
        return self.archive is None or len(self.archive) >= self.archive_size

    def feed(self, chunk: bytes) -> None:
        if self.archive is not None:
            self.archive += chunk
            return
        if self.overflow:
            return
        self.data += chunk
        self._find_marker()
        if self.marker is None and len(self.data) > self.cap + MARKER_ROOM:
            del self.data[self.cap :]
            self.overflow = True

    def _find_marker(self) -> None:
        needle = b"\n" + self.nonce + b" "
        start = self.data.find(needle, self._searched)
        if start < 0:
            self._searched = max(0, len(self.data) - len(needle))
            return
        end = self.data.find(b"\n", start + 1)
        if end < 0:
            return
        words = bytes(self.data[start + 1 + len(self.nonce) + 1 : end]).split()
        rest = bytes(self.data[end + 1 :])
        del self.data[start:]
        self.marker = words
        if words and words[0] == b"archive" and len(words) == 2 and words[1].isdigit():
            self.archive_size = int(words[1])
            self.archive = bytearray(rest)

    def result(self) -> tuple[bytes, bool]:
        """The stream's bytes (at most cap) and whether they were cut."""
        if len(self.data) > self.cap:
            return bytes(self.data[: self.cap]), True
        return bytes(self.data), self.overflow


class Demultiplexer:
    def __init__(self, cap: int, nonce: str) -> None:
        self.streams = {STDOUT: Stream(cap, nonce.encode()), STDERR: Stream(cap, nonce.encode())}
        self._buffer = bytearray()

    @property
    def stdout(self) -> Stream:
        return self.streams[STDOUT]

    @property
    def stderr(self) -> Stream:
        return self.streams[STDERR]

    @property
    def done(self) -> bool:
        return all(stream.done for stream in self.streams.values())

    @property
    def overflow(self) -> bool:
        return any(stream.overflow for stream in self.streams.values())

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            number, size = HEADER.unpack_from(self._buffer)
            if len(self._buffer) < HEADER.size + size:
                return
            payload = bytes(self._buffer[HEADER.size : HEADER.size + size])
            del self._buffer[: HEADER.size + size]
            stream = self.streams.get(number)
            if stream is not None:
                stream.feed(payload)
