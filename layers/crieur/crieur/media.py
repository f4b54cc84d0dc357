"""A publication's images and videos: fetched once from their https URL through the address guard,
with a size cap, their real type sniffed from the bytes (never trusted from the URL or headers) and
their dimensions read, so that each channel can keep or drop them with a reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crieur.models import Media
from crieur.security import ForbiddenTarget

if TYPE_CHECKING:
    import httpx

MAX_MEDIA_BYTES = 20 * 1024 * 1024

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (4, b"ftyp", "video/mp4"),
)


class MediaUnavailable(Exception):
    """The medium cannot be used. `transient` when trying again later may work (its host is down)."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class FetchedMedia:
    media: Media
    content: bytes
    mime: str
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")


def sniff(content: bytes) -> str | None:
    """The type the bytes really are (JPEG, PNG, GIF, WebP, MP4), or None."""
    for offset, magic, mime in _SIGNATURES:
        if content[offset : offset + len(magic)] == magic:
            return mime
    return None


def dimensions(content: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        return None


def shrink_jpeg(content: bytes, max_bytes: int) -> bytes:
    """Re-encodes (and if needed downscales) an image as JPEG until it weighs at most `max_bytes`."""
    from PIL import Image

    with Image.open(io.BytesIO(content)) as original:
        image = original.convert("RGB")
    quality = 85
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= max_bytes:
            return buffer.getvalue()
        if quality > 60:
            quality -= 10
        else:
            image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))


class MediaFetcher:
    """Downloads each medium once per invocation (every channel of a preview shares it)."""

    def __init__(self, http: httpx.Client, max_bytes: int = MAX_MEDIA_BYTES) -> None:
        self.http = http
        self.max_bytes = max_bytes
        self._fetched: dict[str, FetchedMedia | MediaUnavailable] = {}

    def fetch(self, media: Media) -> FetchedMedia:
        url = str(media.url)
        if url not in self._fetched:
            try:
                self._fetched[url] = self._download(media)
            except MediaUnavailable as unavailable:
                if not unavailable.transient:
                    self._fetched[url] = unavailable
                raise
        found = self._fetched[url]
        if isinstance(found, MediaUnavailable):
            raise found
        return found

    def _download(self, media: Media) -> FetchedMedia:
        import httpx  # loaded already: self.http is an httpx client

        url = str(media.url)
        try:
            with self.http.stream("GET", url, follow_redirects=False) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise MediaUnavailable(
                        f"Le site qui héberge {url} ne répond pas (erreur {response.status_code}).", transient=True
                    )
                if not response.is_success:
                    raise MediaUnavailable(f"{url} est introuvable (erreur {response.status_code}).")
                declared = int(response.headers.get("content-length") or 0)
                if declared > self.max_bytes:
                    raise MediaUnavailable(_too_big(url, self.max_bytes))
                chunks, total = [], 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise MediaUnavailable(_too_big(url, self.max_bytes))
                    chunks.append(chunk)
        except ForbiddenTarget as forbidden:
            raise MediaUnavailable(f"{url} désigne une adresse privée ou locale : refusé.") from forbidden
        except httpx.TransportError as failure:  # timeouts included
            raise MediaUnavailable(f"{url} n'a pas pu être téléchargé ({failure}).", transient=True) from failure
        content = b"".join(chunks)
        mime = sniff(content)
        if mime is None:
            raise MediaUnavailable(f"{url} n'est ni une image (JPEG, PNG, GIF, WebP) ni une vidéo MP4.")
        if mime.startswith("image/") and media.kind == "video":
            raise MediaUnavailable(f"{url} est une image, pas une vidéo : corrigez « kind ».")
        if mime.startswith("video/") and media.kind == "image":
            raise MediaUnavailable(f"{url} est une vidéo, pas une image : corrigez « kind ».")
        size = dimensions(content) if mime.startswith("image/") else None
        if mime.startswith("image/") and size is None:
            raise MediaUnavailable(f"{url} est une image illisible ou tronquée.")
        return FetchedMedia(media, content, mime, *(size or (None, None)))


def _too_big(url: str, limit: int) -> str:
    return f"{url} dépasse {limit // (1024 * 1024)} Mo : réduisez l'image ou la vidéo."
