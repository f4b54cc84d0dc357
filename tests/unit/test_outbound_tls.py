"""The guarded client reads its CA bundle on its first TLS connection, not when it is created (cold start), and
still verifies every certificate: a server whose certificate nobody trusts is refused, one whose certificate
names another host too. Loopback only: a TLS server with a self-signed certificate for 127.0.0.1."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crieur.outbound import guarded_client


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class QuietServer(HTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refuses the certificate aborts the handshake: expected here."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """https://127.0.0.1:<port>, and the self-signed certificate it presents."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    httpd = QuietServer(("127.0.0.1", 0), Hello)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/", cert_path
    finally:
        httpd.shutdown()
        httpd.server_close()


def trusted_certificates(client: httpx.Client) -> int:
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, httpcore.ConnectionPool)
    context = pool._ssl_context
    assert context is not None
    return int(context.cert_store_stats()["x509_ca"])


def test_a_certificate_nobody_trusts_is_refused_and_the_bundle_is_read_on_the_first_connection(
    server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")  # loopback
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with guarded_client(timeout=5.0) as client:
        assert trusted_certificates(client) == 0  # nothing read at creation
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(url)
        assert trusted_certificates(client) > 100  # certifi's bundle, read for that handshake


def test_a_trusted_certificate_is_accepted_for_its_own_name_only(
    server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, certificate = server
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # as httpx: the bundle SSL_CERT_FILE names
    with guarded_client(timeout=5.0) as client:
        assert client.get(url).text == "hello"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(url.replace("127.0.0.1", "localhost"))  # the certificate names 127.0.0.1 only
