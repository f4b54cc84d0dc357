"""Secrets and trust: API keys, Standard Webhooks signatures, and the outbound-address guard (SSRF); the HTTP
client that enforces the guard is crieur.outbound."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

API_KEY_PREFIX = "crieur_"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
WEBHOOK_TOLERANCE_SECONDS = 5 * 60


# --- API keys -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewApiKey:
    key: str
    """Shown once to the operator, never stored."""
    key_id: str
    key_hash: str


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_id(key_hash: str) -> str:
    """The public handle of a key (to list and revoke it): the start of its hash."""
    return key_hash[:16]


def new_api_key(chosen: str | None = None) -> NewApiKey:
    """A random key, or `chosen` (the local stack's CRIEUR_LOCAL_API_KEY)."""
    key = chosen or API_KEY_PREFIX + secrets.token_urlsafe(32)
    key_hash = hash_api_key(key)
    return NewApiKey(key=key, key_id=api_key_id(key_hash), key_hash=key_hash)


# --- Standard Webhooks ------------------------------------------------------------------------------------


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))


def webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` as the Standard Webhooks specification defines it."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(secret, message_id, timestamp, body),
    }


class InvalidSignature(Exception):
    """The webhook's signature or timestamp does not hold."""


def verify_webhook(
    secrets_in_force: Iterable[str], headers: dict[str, str], body: bytes, now: float | None = None
) -> None:
    """Accepts when any secret in force (two during a rotation) signed the message, within 5 minutes."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as missing:
        raise InvalidSignature("en-têtes webhook-id, webhook-timestamp ou webhook-signature absents") from missing
    now = time.time() if now is None else now
    if abs(now - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
        raise InvalidSignature("horodatage hors de la tolérance de 5 minutes")
    for secret in secrets_in_force:
        expected = webhook_signature(secret, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return
    raise InvalidSignature("signature invalide")


# --- Outbound address guard -------------------------------------------------------------------------------


class ForbiddenTarget(Exception):
    """An outbound request aimed at a private, loopback or link-local address."""


def private_targets_allowed() -> bool:
    return os.environ.get("CRIEUR_ALLOW_PRIVATE_TARGETS") == "1"


def local_http_allowed(scheme: str, host: str | None) -> bool:
    """Plain http is for the local stack's loopback services only (its sandbox), never elsewhere."""
    if scheme != "http" or not host or not private_targets_allowed():
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64), where the packets really go."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
        return all(inner.is_global and not inner.is_multicast for inner in embedded)
    return ip.is_global and not ip.is_multicast


def public_address(host: str, port: int) -> str:
    """Resolves `host` once and refuses it when any of its addresses is not public; the address to connect to.

    Any spelling of an address resolves to what it means here (2130706433, 0177.0.0.1, 0x7f.1, ::ffff:7f00:1 are
    all 127.0.0.1), and the check is on that. Raises socket.gaierror for an unknown name.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        if not _is_public(str(sockaddr[0])):
            raise ForbiddenTarget(f"{host} désigne une adresse privée ou locale ({sockaddr[0]}) : refusé")
    return str(infos[0][4][0])
