"""The outbound-address guard (SSRF): every private, loopback, link-local or otherwise non-public address is
refused whatever its spelling, a name is resolved once and the connection goes to the address that was
checked (DNS rebinding), and a redirect to a private address is refused at its hop. No real network: name
resolution is replaced and the connection layer is httpcore's mock backend."""

from __future__ import annotations

import socket
from typing import Any

import httpcore
import httpx
import pytest

from crieur.media import MediaFetcher, MediaUnavailable
from crieur.models import Media
from crieur.outbound import GuardedBackend, check_public_host, guarded_client
from crieur.security import ForbiddenTarget

PUBLIC = "93.184.215.14"
HOSTILE = [
    "127.0.0.1",
    "127.1",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hexadecimal
    "0.0.0.0",  # noqa: S104 - an address the guard must refuse
    "localhost",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.169.254",  # the instance metadata service
    "[::1]",
    "[::]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fe80::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[2002:a00:1::]",  # 6to4 of 10.0.0.1
    "[ff02::1]",  # multicast
]


class Connections(httpcore.MockBackend):
    """Records the address each connection is opened to, and answers `responses` in turn."""

    def __init__(self, *responses: list[bytes]) -> None:
        super().__init__([])
        self.responses = list(responses)
        self.opened: list[str] = []

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        self.opened.append(host)
        return httpcore.MockStream(self.responses.pop(0) if self.responses else [b"HTTP/1.1 200 OK\r\n\r\n"])


def client_over(backend: Connections, *, follow_redirects: bool = False) -> httpx.Client:
    client = guarded_client()
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool._network_backend, GuardedBackend)
    pool._network_backend = GuardedBackend(backend)
    client.follow_redirects = follow_redirects
    return client


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Name → the addresses each successive resolution answers (the last one repeats); IP literals resolve
    as the system resolves them."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        if host in answers:
            address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    answers["__calls__"] = calls
    return answers


@pytest.mark.parametrize("host", HOSTILE)
def test_every_spelling_of_a_non_public_address_is_refused_before_connecting(names: Any, host: str) -> None:
    backend = Connections()
    # httpx itself refuses some spellings as URLs (0177.0.0.1); pydantic normalises them in API input (WHATWG).
    with pytest.raises((ForbiddenTarget, httpx.InvalidURL)), client_over(backend) as client:
        client.get(f"https://{host}/latest/meta-data/")
    assert backend.opened == []
    with pytest.raises(ForbiddenTarget):
        check_public_host(host.strip("[]"), 443)


def test_a_public_address_goes_through(names: Any) -> None:
    backend = Connections()
    with client_over(backend) as client:
        assert client.get(f"https://{PUBLIC}/").status_code == 200
    assert backend.opened == [PUBLIC]


def test_a_name_resolving_to_any_private_address_is_refused(names: Any) -> None:
    names["mixed.example"] = ["10.0.0.7"]
    with pytest.raises(ForbiddenTarget), client_over(Connections()) as client:
        client.get("https://mixed.example/")


def test_dns_rebinding_connects_to_the_address_that_was_checked(names: Any) -> None:
    """The name answers public, then private: the one resolution checked is the one connected to."""
    names["rebind.example"] = [PUBLIC, "127.0.0.1"]
    backend = Connections()
    with client_over(backend) as client:
        assert client.get("https://rebind.example/hook").status_code == 200
    assert backend.opened == [PUBLIC]
    assert names["__calls__"].count("rebind.example") == 1
    # A later connection (new client, no pooled connection) resolves anew and meets the private answer.
    with pytest.raises(ForbiddenTarget), client_over(Connections()) as client:
        client.get("https://rebind.example/hook")


def test_a_redirect_to_a_private_address_is_refused_at_its_hop(names: Any) -> None:
    names["public.example"] = [PUBLIC]
    redirect = [b"HTTP/1.1 302 Found\r\n", b"Location: http://169.254.169.254/latest/meta-data/\r\n", b"\r\n"]
    backend = Connections(redirect)
    with pytest.raises(ForbiddenTarget), client_over(backend, follow_redirects=True) as client:
        client.get("https://public.example/image.jpg")
    assert backend.opened == [PUBLIC]


def test_redirects_are_not_followed_by_default(names: Any) -> None:
    names["public.example"] = [PUBLIC]
    redirect = [b"HTTP/1.1 302 Found\r\n", b"Location: https://10.0.0.1/\r\n", b"\r\n"]
    backend = Connections(redirect)
    with client_over(backend) as client:
        assert client.get("https://public.example/").status_code == 302
    assert backend.opened == [PUBLIC]


def test_an_unknown_name_is_a_connection_error_not_a_crash(names: Any) -> None:
    names["__calls__"].clear()

    def unknown(*_: Any, **__: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "unknown")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", unknown)
        with pytest.raises(httpx.ConnectError), client_over(Connections()) as client:
            client.get("https://nowhere.invalid/")


@pytest.mark.parametrize("host", ["169.254.169.254", "[::ffff:10.0.0.1]", "2130706433", "0177.0.0.1", "0x7f.1"])
def test_a_media_url_on_a_private_address_is_refused_for_good(names: Any, host: str) -> None:
    backend = Connections()
    fetcher = MediaFetcher(client_over(backend))
    with pytest.raises(MediaUnavailable) as refused:
        fetcher.fetch(Media(url=f"https://{host}/photo.jpg", alt="Photo", kind="image"))
    assert not refused.value.transient
    assert "privée ou locale" in refused.value.reason
    assert backend.opened == []


def test_an_oversized_medium_is_refused_from_its_declared_length_without_reading_it(names: Any) -> None:
    names["cdn.example"] = [PUBLIC]
    headers = [b"HTTP/1.1 200 OK\r\n", b"Content-Type: image/jpeg\r\n", b"Content-Length: 52428800\r\n", b"\r\n"]
    backend = Connections(headers)
    fetcher = MediaFetcher(client_over(backend), max_bytes=1024 * 1024)
    with pytest.raises(MediaUnavailable) as refused:
        fetcher.fetch(Media(url="https://cdn.example/huge.jpg", alt="Photo", kind="image"))
    assert "dépasse 1 Mo" in refused.value.reason


def test_an_oversized_medium_without_length_stops_at_the_cap(names: Any) -> None:
    names["cdn.example"] = [PUBLIC]
    chunk = b"\xff\xd8\xff" + b"\0" * 65_533
    chunked = [b"HTTP/1.1 200 OK\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n"]
    chunked += [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 40 + [b"0\r\n\r\n"]
    fetcher = MediaFetcher(client_over(Connections(chunked)), max_bytes=1024 * 1024)
    with pytest.raises(MediaUnavailable) as refused:
        fetcher.fetch(Media(url="https://cdn.example/endless.jpg", alt="Photo", kind="image"))
    assert "dépasse 1 Mo" in refused.value.reason
