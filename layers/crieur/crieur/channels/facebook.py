"""Facebook Page channel: the commune's Page through the Graph API, at the version pinned below.

What is posted:
- text only: POST /{page-id}/feed with `message`, and `link` (the first link) so that Facebook draws a
  link card;
- one image: POST /{page-id}/photos with `url` (Facebook fetches the image itself), `caption` (the text)
  and `alt_text_custom` (the alt text);
- several images: each one POST /{page-id}/photos with `published=false`, then POST /{page-id}/feed with
  the text and `attached_media[i]={"media_fbid": …}`.

Graph errors come as HTTP 400/403/500 with an `error` object (crieur.channels.graph): they are classified
on its code, not on the HTTP status.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any, ClassVar

import httpx
from pydantic import field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelError,
    ChannelSettings,
    MediaDecision,
    PermanentChannelError,
    PostChannel,
    RenderedPost,
    SentPost,
    TransientChannelError,
    provider_base_url,
)
from crieur.channels.graph import (
    GRAPH_API_VERSION,
    PERMISSION_CODES,
    TOKEN_CODE,
    GraphError,
    call_graph,
    regain_access_seconds,
)
from crieur.channels.lookup import CLOCK_MARGIN_SECONDS, LOOKUP_PAGES, comparable, lookup_failures
from crieur.media import FetchedMedia, MediaUnavailable
from crieur.models import Media, Publication
from crieur.render.text import compose

GRAPH_HOST = "https://graph.facebook.com"
POST_URL = "https://www.facebook.com/{post_id}"

MAX_MESSAGE_LENGTH = 63206
MAX_PHOTO_BYTES = 4 * 1024 * 1024
PHOTO_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}
LOOKUP_LIMIT = 100
"""Posts per page of the lookup (Graph's most)."""

TOKEN_CODES = frozenset({102, TOKEN_CODE})
POLICY_CODE = 368
DUPLICATE_CODE = 506
IMAGE_CODE = 324
IMAGE_SUBCODE = 1366046
INVALID_PARAMETER_CODE = 100
MISSING_OBJECT_SUBCODE = 33

RECONNECT = "Reconnectez la page Facebook : le jeton a expiré ou a été révoqué."
PERMISSION = (
    "Crieur n'a pas le droit de publier sur cette page : reconnectez-la avec les permissions "
    "pages_manage_posts et pages_read_engagement (tâche « Créer du contenu » sur la page)."
)
VIDEO_REASON = "Crieur ne publie pas encore de vidéos sur Facebook : la vidéo n'est pas jointe."
LINK_CARD_WARNING = "Avec des images, Facebook n'affiche pas l'aperçu du lien : le lien reste cliquable dans le texte."


class FacebookSettings(ChannelSettings):
    page_id: str

    @field_validator("page_id")
    @classmethod
    def _numeric(cls, page_id: str) -> str:
        if not page_id.isascii() or not page_id.isdigit():
            raise ValueError("L'identifiant de page Facebook est un nombre (par exemple 104839201234567).")
        return page_id


class FacebookCredentials(ChannelCredentials):
    page_access_token: str

    @field_validator("page_access_token")
    @classmethod
    def _token(cls, token: str) -> str:
        token = token.strip()
        if not token or any(char.isspace() for char in token):
            raise ValueError("Le jeton de page Facebook est vide ou contient des espaces : recopiez-le.")
        return token


def _animated(content: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        return int(getattr(image, "n_frames", 1)) > 1


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".replace(".", ",")


class FacebookChannel(PostChannel[FacebookSettings, FacebookCredentials]):
    """Posts to a Facebook Page with a Page access token.

    Idempotency: Facebook has no idempotency key, so `send` first looks among the Page's posts published
    since the publication was created (GET /{page-id}/published_posts, newest first, at most LOOKUP_PAGES
    pages; the lookup `find_sent` makes for the worker after an attempt of unknown outcome) for one carrying
    the same text, and returns it instead of posting again: a retry after a timeout or a 5xx that Facebook had in fact
    executed finds the post. Error 506 (duplicate status message) is looked up the same way: found, it is
    the post an earlier attempt made; not found, the Page already carried that text before this
    publication and the mairie is asked to change it. What remains possible: a post that Facebook shows
    in published_posts only after the retry (the queue waits at least 10 s between attempts); a post whose
    text was edited by hand on Facebook between two attempts; unpublished photos left behind by an attempt
    that failed before its /feed call (Facebook keeps them unpublished: nobody sees them).
    """

    name: ClassVar = "facebook"
    label: ClassVar = "Facebook"
    settings_model: ClassVar = FacebookSettings
    credentials_model: ClassVar = FacebookCredentials

    def max_length(self) -> int:
        return MAX_MESSAGE_LENGTH

    # -- render ----------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("facebook")
        text = compose(
            publication, MAX_MESSAGE_LENGTH, self.measure, override=override.text if override else None, hashtag=False
        )
        decisions = [self._decide(media) for media in publication.media]
        photos = [{"url": decision.url, "alt": decision.alt} for decision in decisions if decision.kept]
        warnings = [LINK_CARD_WARNING] if photos and publication.links else []
        link = str(publication.links[0].url) if publication.links and not photos else None
        return RenderedPost(
            text=text,
            length=self.measure(text),
            limit=MAX_MESSAGE_LENGTH,
            media=decisions,
            warnings=warnings,
            payload={
                "message": text,
                "link": link,
                "photos": photos,
                "since": int(publication.created_at.timestamp()) - CLOCK_MARGIN_SECONDS,
            },
        )

    def _decide(self, media: Media) -> MediaDecision:
        reason = self._refusal(media)
        return MediaDecision(url=str(media.url), alt=media.alt, kept=reason is None, reason=reason)

    def _refusal(self, media: Media) -> str | None:
        """Why Facebook cannot take this medium as a photo, in French; None when it can."""
        if media.kind == "video":
            return VIDEO_REASON
        try:
            fetched = self.media.fetch(media)
        except MediaUnavailable as unavailable:
            if unavailable.transient:
                raise TransientChannelError(
                    "media_unavailable", f"{unavailable.reason} Nouvel essai automatique.", unavailable.reason
                ) from unavailable
            return unavailable.reason
        return _photo_problem(fetched)

    # -- send ------------------------------------------------------------------------------------------

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        """Posts the rendered text and photos; see the class docstring for why no second post can follow."""
        payload = rendered.payload
        earlier = self._already_posted(payload)
        if earlier is not None:
            return earlier
        try:
            post_id = self._publish(payload)
        except PermanentChannelError as refused:
            if refused.code != "duplicate":
                raise
            earlier = self.find_sent(rendered, delivery_id=delivery_id)
            if earlier is None:
                raise
            return earlier
        return self._sent(post_id)

    def _publish(self, payload: dict[str, Any]) -> str:
        message: str = payload["message"]
        photos: list[dict[str, str]] = payload["photos"]
        page = self.settings.page_id
        if not photos:
            fields = {"message": message, **({"link": payload["link"]} if payload.get("link") else {})}
            return str(self._call("POST", f"{page}/feed", data=fields)["id"])
        if len(photos) == 1:
            photo = {"url": photos[0]["url"], "caption": message, "alt_text_custom": photos[0]["alt"]}
            return str(self._call("POST", f"{page}/photos", data={**photo, "published": "true"})["post_id"])
        uploaded: list[str] = []
        try:
            for photo in photos:
                fields = {"url": photo["url"], "alt_text_custom": photo["alt"], "published": "false"}
                uploaded.append(str(self._call("POST", f"{page}/photos", data=fields)["id"]))
            attached = {
                f"attached_media[{index}]": json.dumps({"media_fbid": photo_id})
                for index, photo_id in enumerate(uploaded)
            }
            return str(self._call("POST", f"{page}/feed", data={"message": message, **attached})["id"])
        except PermanentChannelError:
            # Refused for sure: the photos uploaded for this post will never be attached, remove them.
            self._discard(uploaded)
            raise

    def _discard(self, photo_ids: list[str]) -> None:
        for photo_id in photo_ids:
            with contextlib.suppress(ChannelError):
                self._call("DELETE", photo_id)

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The Page's post carrying the rendered text among those published since the publication was created
        (see the class docstring); a lookup Facebook does not answer is a TransientChannelError."""
        with lookup_failures(self.label):
            return self._already_posted(rendered.payload)

    def _already_posted(self, payload: dict[str, Any]) -> SentPost | None:
        """The Page's post with this text published since the publication was created, if any: newest first,
        at most LOOKUP_PAGES pages of LOOKUP_LIMIT, each message compared with white space made single."""
        params: dict[str, Any] = {"fields": "id,message,created_time", "since": payload["since"], "limit": LOOKUP_LIMIT}
        wanted = comparable(payload["message"])
        for _ in range(LOOKUP_PAGES):
            answer = self._call("GET", f"{self.settings.page_id}/published_posts", params=params)
            for post in answer.get("data") or []:
                if isinstance(post, dict) and comparable(str(post.get("message") or "")) == wanted:
                    return self._sent(str(post["id"]))
            paging = answer.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:  # Graph leaves `next` out on the last page
                break
            params["after"] = after
        return None

    @staticmethod
    def _sent(post_id: str) -> SentPost:
        return SentPost(external_id=post_id, url=POST_URL.format(post_id=post_id))

    # -- delete, check -----------------------------------------------------------------------------------

    def delete(self, external_id: str) -> None:
        try:
            self._call("DELETE", external_id)
        except PermanentChannelError as refused:
            if refused.code != "not_found" and refused.http_status != 404:  # already gone: done
                raise

    def check(self) -> ChannelCheck:
        """GET /me proves the token and names its Page; published_posts proves Crieur can find its posts."""
        me = self._call("GET", "me", params={"fields": "id,name"})
        page_id = self.settings.page_id
        name = str(me.get("name") or page_id)
        if str(me.get("id")) != page_id:
            raise PermanentChannelError(
                "wrong_page",
                f"Ce jeton ouvre « {name} » (identifiant {me.get('id')}), pas la page {page_id} des réglages : "
                "utilisez le jeton de cette page (un jeton de page, pas d'utilisateur) ou corrigez l'identifiant.",
            )
        self._call("GET", f"{page_id}/published_posts", params={"fields": "id", "limit": 1})
        return ChannelCheck(
            ok=True,
            account=name,
            message=(
                f"La page Facebook « {name} » est reliée : le jeton l'ouvre et lit ses publications. "
                "Le droit de publier sera confirmé au premier envoi."
            ),
            permissions=["ouvrir la page", "lire les publications de la page"],
        )

    # -- Graph calls -------------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, data: dict[str, str] | None = None
    ) -> dict[str, Any]:
        request = self.http.build_request(
            method,
            f"{provider_base_url('FACEBOOK', GRAPH_HOST)}/{GRAPH_API_VERSION}/{path}",
            params=params,
            data=data,
            headers={"Authorization": f"Bearer {self.credentials.page_access_token}"},
        )
        response = call_graph(self.http, self.label, request, self._refine)
        body: Any = response.json()
        return body if isinstance(body, dict) else {}

    def _refine(self, failure: ChannelError, response: httpx.Response) -> ChannelError:  # noqa: PLR0911
        """The classification a Graph error code calls for (call_provider only saw the HTTP status)."""
        graph = GraphError.of(response)
        if graph is None or graph.code is None:
            return failure
        detail, status = graph.describe(), response.status_code
        if graph.code in TOKEN_CODES:
            return PermanentChannelError("needs_reconnect", RECONNECT, detail, status)
        if graph.code in PERMISSION_CODES:
            return PermanentChannelError("permission_denied", PERMISSION, detail, status)
        if graph.throttled:
            wait = regain_access_seconds(response)
            when = f"dans environ {math.ceil(wait / 60)} min" if wait else "plus tard"
            message = f"Facebook limite les appels pour cette page : nouvel essai automatique {when}."
            return TransientChannelError("rate_limited", message, detail, wait, status)
        if graph.retryable:
            message = "Facebook a rencontré une erreur passagère : nouvel essai automatique."
            return TransientChannelError("provider_unavailable", message, detail, None, status)
        if graph.code == POLICY_CODE:
            message = (
                "Facebook bloque cette publication au nom de ses règles (contenu jugé abusif ou répété) : "
                "consultez la qualité du compte de la page dans Meta Business Suite avant de republier."
            )
            return PermanentChannelError("policy_blocked", message, detail, status)
        if graph.code == DUPLICATE_CODE:
            message = (
                "Facebook refuse ce texte : la page a déjà publié exactement le même. Modifiez-le pour le republier."
            )
            return PermanentChannelError("duplicate", message, detail, status)
        if graph.code == IMAGE_CODE or graph.subcode == IMAGE_SUBCODE:
            message = (
                "Facebook n'a pas pu utiliser une des images : vérifiez qu'elle est publique, au format JPEG, "
                "PNG ou GIF, et de moins de 4 Mo."
            )
            return PermanentChannelError("media_rejected", message, detail, status)
        if graph.code == INVALID_PARAMETER_CODE and graph.subcode == MISSING_OBJECT_SUBCODE:
            message = (
                f"Facebook ne trouve pas la page {self.settings.page_id} (ou la publication) avec ce jeton : "
                "vérifiez l'identifiant de page, ou reconnectez la page."
            )
            return PermanentChannelError("not_found", message, detail, status)
        if isinstance(failure, TransientChannelError):
            return TransientChannelError(failure.code, failure.message, detail, failure.retry_after, status)
        message = f"Facebook a refusé la publication (erreur #{graph.code}) : {graph.message}"
        return PermanentChannelError("rejected", message, detail, status)


def _photo_problem(fetched: FetchedMedia) -> str | None:
    """Facebook's photo rules (JPEG, PNG or GIF, at most 4 MB, no animation), in French."""
    url = str(fetched.media.url)
    if fetched.mime not in PHOTO_FORMATS:
        kind = fetched.mime.removeprefix("image/").upper()
        return f"{url} est au format {kind} : Facebook n'accepte que les images JPEG, PNG ou GIF. Convertissez-la."
    if fetched.size > MAX_PHOTO_BYTES:
        return f"{url} pèse {_megabytes(fetched.size)} Mo : Facebook accepte au plus 4 Mo par image. Réduisez-la."
    if fetched.mime == "image/gif" and _animated(fetched.content):
        return f"{url} est un GIF animé : Facebook n'en publie pas par son API. Utilisez une image fixe."
    return None
