"""The attach stream of a container: demultiplexed, capped, and cut at the end markers.

Docker multiplexes stdout and stderr on one connection in frames (an 8-byte header: stream
number, three zero bytes, big-endian payload size). The run script ends each stream with a
marker line that holds a per-run nonce; stdout's marker may be followed by an archive of the
work dir (a compile stage's artifacts). Every buffer is bounded: each stream keeps at most its
cap plus the room a marker needs (anything beyond is an output limit), an archive at most
``archive_cap`` bytes (a larger one is refused as soon as its size is announced), and nothing
after a stream's marker (or after its archive) is kept.
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
    archive_cap: int = 0  # the largest archive accepted after this stream's marker
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False  # more than cap (+ marker room) arrived
    marker: list[bytes] | None = None  # the marker's words after the nonce, once seen
    archive: bytearray | None = None
    archive_size: int = 0
    archive_too_large: bool = False  # the announced archive is larger than archive_cap
    _searched: int = 0  # where the next search for the marker starts

    @property
    def done(self) -> bool:
        if self.marker is None:
            return False
        return self.archive is None or len(self.archive) >= self.archive_size

    def feed(self, chunk: bytes) -> None:
        if self.archive is not None:
            self.archive += chunk[: self.archive_size - len(self.archive)]
            return
        if self.overflow or self.marker is not None:
            return  # the stream has ended (or overflowed): what follows is not kept
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
        # A compile's artifacts (archive SIZE) or a run's output files (outputs SIZE HITS).
        announced = words[:1] in ([b"archive"], [b"outputs"]) and len(words) in (2, 3)
        if announced and words[1].isdigit():
            size = int(words[1])
            if size > self.archive_cap:
                self.archive_too_large = True
                return
            self.archive_size = size
            self.archive = bytearray(rest[:size])

    def result(self) -> tuple[bytes, bool]:
        """The stream's bytes (at most cap) and whether they were cut."""
        if len(self.data) > self.cap:
            return bytes(self.data[: self.cap]), True
        return bytes(self.data), self.overflow


class Demultiplexer:
    def __init__(self, cap: int, nonce: str, archive_cap: int = 0) -> None:
        self.streams = {
            STDOUT: Stream(cap, nonce.encode(), archive_cap),
            STDERR: Stream(cap, nonce.encode()),
        }
        self._header = bytearray()
        self._number = 0  # the stream of the frame being read
        self._left = 0  # how much of its payload is still to come

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
        """Dispatch ``data`` as it arrives: a frame's payload is passed on piece by piece, so
        that nothing but a partial header is held here whatever size a frame announces."""
        view = memoryview(data)
        while view:
            if self._left == 0:
                needed = HEADER.size - len(self._header)
                self._header += view[:needed]
                view = view[needed:]
                if len(self._header) < HEADER.size:
                    return
                self._number, self._left = HEADER.unpack(self._header)
                self._header.clear()
                continue
            piece = bytes(view[: self._left])
            view = view[len(piece) :]
            self._left -= len(piece)
            stream = self.streams.get(self._number)
            if stream is not None:
                stream.feed(piece)
