"""Callbacks: a finished submission is PUT to the URL its creator gave.

A callback makes the server send a request where a client says, so it is an SSRF vector
(Judge0's own callbacks fetch any URL). Unless an operator allows private destinations, only
global unicast addresses are accepted: not loopback, private, link-local (metadata),
multicast, reserved or special-purpose ones, nor an IPv6 address that carries such an IPv4
address inside it (IPv4-mapped, -compatible or -translated, NAT64, 6to4, Teredo). The name is
resolved off the event loop with a timeout, when the submission is created and again before
each delivery, and the delivery connects to the address that was checked (the Host header
and TLS server name stay the URL's): a name that resolves elsewhere later is never used.

A receiver is as untrusted as the URL: one delivery attempt, from the name lookup to the
answer's status, has one deadline (``callback_timeout_s``; httpx's own timeout bounds each
read, so a receiver sending a byte every few seconds would hold it forever), and the answer's
body is never read (an endless one would grow the process without bound).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("execbox.callbacks")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Special-purpose blocks Python's is_global (3.11) still counts as global.
NOT_GLOBAL_V4 = [ipaddress.IPv4Network(n) for n in ("0.0.0.0/8", "192.0.0.0/24", "240.0.0.0/4")]
NOT_GLOBAL_V6 = [
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated): the IPv4 address is the destination
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "fec0::/10",  # site-local (deprecated)
        "100::/64",  # discard
        "2001::/32",  # Teredo: reached through a relay, not where it seems
    )
]
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class ForbiddenDestination(ValueError):
    """The callback URL is malformed or points where the server must not send requests."""


def forbidden(ip: IPAddress) -> bool:
    """Whether a callback must not go to ``ip``: anything but a global unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in NOT_GLOBAL_V6):
            return True
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # Judged by the IPv4 address it carries: whether the translation prefix itself
            # counts as global differs between Python releases (3.11.2 calls 6to4 private).
            return forbidden(embedded)
    elif any(ip in net for net in NOT_GLOBAL_V4):
        return True
    return not ip.is_global or ip.is_multicast


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address, reached through the relay
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _parse(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenDestination("callback_url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ForbiddenDestination("callback_url must not carry credentials")
    try:
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ForbiddenDestination("callback_url has an invalid port") from None


RESOLVER_THREADS = 4
# Lookups get threads of their own: one that hangs keeps its thread past our timeout, and in
# the loop's shared pool it would hold up the sandbox's own work (cleanups, file collection).
_resolvers = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="execbox-dns")


async def _resolve(host: str, port: int, timeout_s: float) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    lookup = partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = await asyncio.wait_for(loop.run_in_executor(_resolvers, lookup), timeout_s)
    except TimeoutError:
        raise ForbiddenDestination(
            f"callback_url host {host!r} did not resolve within {timeout_s:g} s"
        ) from None
    except (OSError, UnicodeError):
        raise ForbiddenDestination(f"callback_url host {host!r} does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_destination(url: str, allow_private: bool, timeout_s: float) -> list[IPAddress]:
    """The addresses ``url`` may be delivered to, or ForbiddenDestination saying why none."""
    host, port = _parse(url)
    addresses = await _resolve(host, port, timeout_s)
    if allow_private:
        return addresses
    # Every address the name has must be allowed: the client does not pick which is used.
    for ip in addresses:
        if forbidden(ip):
            raise ForbiddenDestination(
                f"callback_url resolves to {ip}, a loopback, private, link-local, reserved or "
                "special-purpose address; callbacks go to public addresses only"
            )
    if not addresses:
        raise ForbiddenDestination(f"callback_url host {host!r} does not resolve")
    return addresses


def pinned_request(url: str, address: IPAddress) -> tuple[str, dict[str, str], dict]:
    """The URL with its host replaced by ``address``, and the Host header and TLS server name
    that keep it the request the URL names."""
    original = httpx.URL(url)
    host_header = original.netloc.decode("ascii")
    tls_name = original.raw_host.decode("ascii")
    extensions = {"sni_hostname": tls_name} if original.scheme == "https" else {}
    return str(original.copy_with(host=str(address))), {"Host": host_header}, extensions


class Delivery(enum.Enum):
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # no answer, or not 2xx: worth another try
    REFUSED = "refused"  # the destination is not allowed (now): never worth another


class CallbackSender:
    def __init__(
        self, allow_private: bool, timeout_s: float, max_tries: int, retry_delay_s: float = 1.0
    ) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s  # one attempt's deadline, lookup to status line
        self.max_tries = max_tries
        self.retry_delay_s = retry_delay_s
        # No kept-alive connections: each is made to a pinned address and verified for one
        # host name, and must not carry a later callback for another name at that address.
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def send(self, url: str, body: dict) -> bool:
        """PUT ``body`` as JSON, trying up to ``max_tries`` times; True once the receiver
        answered 2xx."""
        for attempt in range(1, self.max_tries + 1):
            delivery = await self.deliver_once(url, body)
            if delivery is not Delivery.FAILED:
                return delivery is Delivery.DELIVERED
            if attempt < self.max_tries:
                await asyncio.sleep(self.retry_delay_s * attempt)
        log.warning("callback to %s given up after %d tries", url, self.max_tries)
        return False

    async def deliver_once(self, url: str, body: dict) -> Delivery:
        """One try, over within ``timeout_s`` whatever the receiver does: the destination
        checked again (its name may resolve elsewhere now), then ``body`` PUT to the address
        that was checked."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._attempt(url, body)
        except TimeoutError:
            log.info("callback to %s: no answer within %g s", url, self.timeout_s)
            return Delivery.FAILED

    async def _attempt(self, url: str, body: dict) -> Delivery:
        try:
            addresses = await check_destination(url, self.allow_private, self.timeout_s)
        except ForbiddenDestination as err:
            log.warning("callback to %s refused: %s", url, err)
            return Delivery.REFUSED
        target, headers, extensions = pinned_request(url, addresses[0])
        try:
            # Streamed: only the status is read; leaving the block closes the connection
            # with the body (if any) unread.
            async with self._client.stream(
                "PUT", target, json=body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.HTTPError as err:
            log.info("callback to %s failed: %s", url, err)
            return Delivery.FAILED
        if 200 <= status < 300:
            return Delivery.DELIVERED
        log.info("callback to %s answered %d", url, status)
        return Delivery.FAILED

    async def close(self) -> None:
        await self._client.aclose()
