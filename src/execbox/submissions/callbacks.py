"""Callbacks: a finished submission is PUT to the URL its creator gave.

A callback makes the server send a request where a client says, so it is an SSRF vector
(Judge0's own callbacks fetch any URL). Destinations on loopback, private, link-local,
multicast, reserved or metadata addresses are refused, when the submission is created and
again when the callback is sent (the name could resolve elsewhere by then), unless an operator
allows them. Delivery is retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("execbox.callbacks")


class ForbiddenDestination(ValueError):
    """The callback URL is malformed or points where the server must not send requests."""


def _addresses(host: str, port: int) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise ForbiddenDestination(f"callback_url host {host!r} does not resolve") from err
    return {info[4][0] for info in infos}


def check_destination(url: str, allow_private: bool) -> None:
    """Raise ForbiddenDestination unless ``url`` may receive a callback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenDestination("callback_url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ForbiddenDestination("callback_url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ForbiddenDestination("callback_url has an invalid port") from None
    if allow_private:
        return
    for address in _addresses(parts.hostname, port):
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise ForbiddenDestination(
                f"callback_url resolves to {ip}, a loopback, private, link-local or reserved "
                "address; callbacks go to public addresses only"
            )


class CallbackSender:
    def __init__(
        self, allow_private: bool, timeout_s: float, max_tries: int, retry_delay_s: float = 1.0
    ) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.max_tries = max_tries
        self.retry_delay_s = retry_delay_s
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def send(self, url: str, body: dict) -> bool:
        """PUT ``body`` as JSON; True once the receiver answered 2xx."""
        for attempt in range(1, self.max_tries + 1):
            try:
                await asyncio.to_thread(check_destination, url, self.allow_private)
            except ForbiddenDestination as err:
                log.warning("callback to %s refused: %s", url, err)
                return False
            try:
                response = await self._client.put(url, json=body)
                if response.is_success:
                    return True
                log.info("callback to %s answered %d", url, response.status_code)
            except httpx.HTTPError as err:
                log.info("callback to %s failed: %s", url, err)
            if attempt < self.max_tries:
                await asyncio.sleep(self.retry_delay_s * attempt)
        log.warning("callback to %s given up after %d tries", url, self.max_tries)
        return False

    async def close(self) -> None:
        await self._client.aclose()
