"""The mairie's web console: static files (the repository's console/ folder, no build step) kept in the
console bucket under `console/` and served by the API at /console/… with no key (the page asks for the
commune's key and keeps it in sessionStorage). Every answer carries a strict Content-Security-Policy: the
console has no inline script or style, and talks only to the API on its own origin.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from botocore.exceptions import ClientError

from crieur import aws
from crieur.security import private_targets_allowed

PREFIX = "console/"
INDEX = "index.html"
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml; charset=utf-8",
    ".json": "application/json; charset=utf-8",
}
"""The kinds of file the console is made of (text only), by extension: anything else is not served."""


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str


def content_type(name: str) -> str | None:
    return CONTENT_TYPES.get(posixpath.splitext(name)[1].lower())


def console_bucket() -> str | None:
    return os.environ.get("CRIEUR_CONSOLE_BUCKET") or None


def read_asset(name: str) -> Asset | None:
    """One console file (`index.html`, `app.js`…), or None when it is not a console file or is missing."""
    kind = content_type(name)
    bucket = console_bucket()
    if kind is None or bucket is None or name.startswith(".") or "/" in name:
        return None
    try:
        answer = aws.s3().get_object(Bucket=bucket, Key=PREFIX + name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return Asset(body=answer["Body"].read().decode("utf-8"), content_type=kind, etag=str(answer.get("ETag", "")))


def headers(asset: Asset) -> dict[str, str]:
    """Revalidated on every load (the file names carry no version), cheap thanks to the ETag; locked down."""
    images = "'self' https: data:" + (" http://127.0.0.1:* http://localhost:*" if private_targets_allowed() else "")
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src {images}; media-src https:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return {
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
