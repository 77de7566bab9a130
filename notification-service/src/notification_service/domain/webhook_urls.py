"""Where a merchant webhook may point: https in production, never at our own network (SSRF)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from notification_service.domain.errors import InvalidWebhookUrl

MAX_URL_LENGTH = 2048

# Not covered by ipaddress' is_private/is_link_local on every Python: carrier-grade NAT, the
# IPv6 form of the cloud metadata address family, and NAT64 (it reaches IPv4 behind it).
_EXTRA_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("fd00:ec2::/32"),
    ipaddress.ip_network("64:ff9b::/96"),
)


@dataclass(frozen=True)
class UrlPolicy:
    require_https: bool
    allow_private: bool


def blocked_reason(address: str) -> str | None:
    """Why an address is not a public unicast one, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata lives here)"
    if ip.is_private:
        return "private"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "not a unicast address"
    if any(ip in net for net in _EXTRA_BLOCKED):
        return "shared or translated address space"
    return None


def parse_webhook_url(url: str, policy: UrlPolicy) -> tuple[str, int]:
    """Syntax and scheme checks; returns (host, port)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"The URL is longer than {MAX_URL_LENGTH} characters")
    try:  # urlsplit and .hostname raise ValueError for a malformed host ("https://v^[x")
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidWebhookUrl("The webhook URL's host is malformed") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidWebhookUrl("The webhook URL must be http(s)")
    if policy.require_https and parts.scheme != "https":
        raise InvalidWebhookUrl("The webhook URL must use https")
    if parts.username or parts.password:
        raise InvalidWebhookUrl("The webhook URL must not carry credentials")
    if parts.fragment:
        raise InvalidWebhookUrl("The webhook URL must not have a fragment")
    if not host:
        raise InvalidWebhookUrl("The webhook URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidWebhookUrl("The webhook URL has an invalid port") from None
    return host, port


@dataclass(frozen=True)
class PinnedTarget:
    """Where to connect so the vetted address is the one used (no second DNS lookup)."""

    url: str  # the URL with its host replaced by the address
    host_header: str
    sni_hostname: str | None  # for https: the name the certificate must match


def pin_to_address(url: str, address: str) -> PinnedTarget:
    """`https://shop.example/h?x` + `203.0.113.7` → connect to the IP, speak to the name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    literal = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    return PinnedTarget(
        url=parts._replace(netloc=netloc).geturl(),
        host_header=parts.netloc,
        sni_hostname=host if parts.scheme == "https" else None,
    )


async def check_webhook_url(url: str, policy: UrlPolicy) -> list[str]:
    """Refuse a URL that is malformed or, under a strict policy, resolves anywhere private.

    Every resolved address is checked (a name with one public and one private address is
    refused). Called when the URL is saved and again before every send, because DNS answers
    change. Resolving is the only network traffic: nothing is sent to the target here.
    Returns the vetted addresses (empty when private targets are allowed and nothing was
    resolved), so the sender can connect to exactly those.
    """
    host, port = parse_webhook_url(url, policy)
    if policy.allow_private:
        return []
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidWebhookUrl(f"The webhook host {host!r} does not resolve") from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses:
        raise InvalidWebhookUrl(f"The webhook host {host!r} does not resolve")
    for address in sorted(addresses):
        reason = blocked_reason(address)
        if reason is not None:
            raise InvalidWebhookUrl(
                f"The webhook host {host!r} resolves to a {reason} address ({address})"
            )
    # IPv4 first: a host without IPv6 routes still reaches a dual-stack receiver.
    return sorted(addresses, key=lambda a: (":" in a, a))
