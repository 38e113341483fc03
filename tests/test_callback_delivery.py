"""One callback delivery against hostile receivers on 127.0.0.1: one that trickles its answer a
byte a second, one that answers with a body without end. A try ends within its deadline
either way (a failed try when no 2xx status came), and reads no body."""

from __future__ import annotations

import asyncio
import time

from callback_receivers import RawReceiver, endless, trickle
from conftest import slow

from execbox.submissions.callbacks import CallbackSender

DEADLINE_S = 2.0


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
