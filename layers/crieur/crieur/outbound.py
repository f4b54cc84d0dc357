"""The guarded HTTP client: every outbound request to a commune-provided address goes through it.

Apart from crieur.security (the address policy it enforces) so that importing the policy, as the models
do, does not import httpx and httpcore: a function whose requests make no HTTP call (the authorizer, a
release) does not pay for them at cold start (ARCHITECTURE.md §8).
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from crieur.security import ForbiddenTarget, private_targets_allowed, public_address


def check_public_host(host: str, port: int) -> None:
    """Resolves `host` and refuses it when any of its addresses is not public."""
    try:
        public_address(host, port)
    except socket.gaierror as unknown:
        raise httpx.ConnectError(f"nom de domaine introuvable : {host}") from unknown


class GuardedBackend(httpcore.NetworkBackend):
    """Opens every connection to the address it checked: a name is resolved once, at connect time, so a DNS
    answer that turns private between a check and the connection (DNS rebinding) never reaches a private host.
    TLS still verifies the certificate against the name (httpcore passes the name as server_hostname)."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if not private_targets_allowed():
            try:
                host = public_address(host, port)
            except socket.gaierror as unknown:
                raise httpcore.ConnectError(f"nom de domaine introuvable : {host}") from unknown
        return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        raise ForbiddenTarget("socket Unix : refusé")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class DeferredTrust(ssl.SSLContext):
    """A TLS client context with `ssl.create_default_context`'s settings (certificate and host name required)
    that reads its CA bundle on its first handshake rather than when the client is created (~15 ms, paid at
    cold start by every function, even one whose first requests make no TLS connection; botocore, too, loads
    its bundle on its first HTTPS connection). No socket is wrapped before the bundle is loaded: every
    certificate is verified against it, as before."""

    bundle: tuple[str | None, str | None]
    """(cafile, capath) to load."""
    trusted: bool
    loading: threading.Lock

    def trust(self) -> None:
        if self.trusted:
            return
        with self.loading:
            if not self.trusted:
                cafile, capath = self.bundle
                self.load_verify_locations(cafile=cafile, capath=capath)
                self.trusted = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.trust()
        return super().wrap_bio(*args, **kwargs)


def deferred_trust() -> DeferredTrust:
    """The context httpx would create (the bundle named by SSL_CERT_FILE or SSL_CERT_DIR, else certifi's), its
    bundle loaded on first use."""
    context = DeferredTrust(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    if os.environ.get("SSL_CERT_FILE"):
        context.bundle = (os.environ["SSL_CERT_FILE"], None)
    elif os.environ.get("SSL_CERT_DIR"):
        context.bundle = (None, os.environ["SSL_CERT_DIR"])
    else:
        import certifi

        context.bundle = (certifi.where(), None)
    context.trusted = False
    context.loading = threading.Lock()
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        context.keylog_filename = keylog
    return context


class GuardedTransport(httpx.HTTPTransport):
    """Every connection goes through GuardedBackend: each redirect hop too, and a pooled connection is one that
    was checked when it was opened."""

    def __init__(self, *, retries: int = 0, http2: bool = False, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(retries=retries, http2=http2, verify=deferred_trust() if verify is True else verify)
        pool = self._pool
        assert isinstance(pool, httpcore.ConnectionPool)
        pool._network_backend = GuardedBackend(pool._network_backend)


def guarded_client(timeout: float = 10.0) -> httpx.Client:
    """The only HTTP client channel adapters use for commune-provided addresses.

    HTTP/2 wherever the server offers it over TLS (push services do: the messages of a Web Push chunk then
    share one connection), HTTP/1.1 elsewhere; the guard checks every connection either way.
    """
    return httpx.Client(
        transport=GuardedTransport(retries=0, http2=True),
        timeout=httpx.Timeout(timeout, connect=5.0),
        follow_redirects=False,
        headers={"User-Agent": "Crieur/0.1 (+https://github.com/crieur)"},
    )
