"""The Docker attach stream's reader (pure logic): frames, caps and end markers."""

from __future__ import annotations

import struct

from execbox.sandbox.docker.frames import MARKER_ROOM, Demultiplexer

NONCE = "0123abcd"


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_streams_are_separated_and_markers_cut_even_when_split_across_reads():
    data = (
        frame(1, b"out without newline")
        + frame(2, b"err\n")
        + frame(2, f"\n{NONCE} 0 1500000 4096 0\n".encode())
        + frame(1, f"\n{NONCE} end\n".encode())
    )
    demux = Demultiplexer(cap=1000, nonce=NONCE)
    for i in range(0, len(data), 3):  # three bytes at a time
        demux.feed(data[i : i + 3])
    assert demux.done
    assert demux.stdout.result() == (b"out without newline", False)
    assert demux.stderr.result() == (b"err\n", False)
    assert demux.stderr.marker == [b"0", b"1500000", b"4096", b"0"]


def test_a_forged_marker_with_another_nonce_is_output():
    demux = Demultiplexer(cap=1000, nonce=NONCE)
    demux.feed(frame(1, b"\nffffffff end\n"))
    assert not demux.done and demux.stdout.result() == (b"\nffffffff end\n", False)


def test_output_beyond_the_cap_overflows_and_is_cut_at_the_cap():
    demux = Demultiplexer(cap=10, nonce=NONCE)
    demux.feed(frame(1, b"x" * (10 + MARKER_ROOM + 1)))
    assert demux.overflow
    assert demux.stdout.result() == (b"x" * 10, True)


def test_output_up_to_the_cap_with_its_marker_is_whole():
    demux = Demultiplexer(cap=10, nonce=NONCE)
    demux.feed(frame(1, b"y" * 10 + f"\n{NONCE} end\n".encode()))
    assert demux.stdout.result() == (b"y" * 10, False) and demux.stdout.done


def test_an_archive_follows_the_stdout_marker():
    demux = Demultiplexer(cap=100, nonce=NONCE, archive_cap=6)
    demux.feed(frame(1, f"\n{NONCE} archive 6\nab".encode()))
    assert not demux.stdout.done
    demux.feed(frame(1, b"cdef"))
    assert demux.stdout.done and bytes(demux.stdout.archive or b"") == b"abcdef"


def test_nothing_after_a_marker_is_kept():
    """Whatever follows a stream's end (a forged marker's tail, a flood) costs no memory."""
    demux = Demultiplexer(cap=10, nonce=NONCE, archive_cap=4)
    demux.feed(frame(2, f"\n{NONCE} 0 1 2 0\n".encode() + b"z" * 1000))
    demux.feed(frame(1, f"\n{NONCE} archive 4\nabcd".encode() + b"x" * 1000))
    for _ in range(100):
        demux.feed(frame(1, b"y" * 10_000) + frame(2, b"y" * 10_000))
    assert demux.done and not demux.overflow
    assert bytes(demux.stdout.archive or b"") == b"abcd"
    assert demux.stdout.data == demux.stderr.data == b""


def test_an_archive_larger_than_its_cap_is_refused_when_announced():
    demux = Demultiplexer(cap=10, nonce=NONCE, archive_cap=100)
    demux.feed(frame(1, f"\n{NONCE} archive 101\n".encode() + b"a" * 1000))
    assert demux.stdout.done and demux.stdout.archive_too_large
    assert demux.stdout.archive is None


def test_a_frame_is_passed_on_as_it_arrives_whatever_size_it_announces():
    demux = Demultiplexer(cap=10, nonce=NONCE)
    demux.feed(struct.pack(">BxxxI", 1, 0xFFFFFFFF) + b"w" * 300)
    assert demux.overflow and demux.stdout.result() == (b"w" * 10, True)
    assert len(demux._header) == 0
