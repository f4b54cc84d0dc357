"""Instagram channel: the content publishing API (container, then status, then `media_publish`).

`send` for one delivery:

1. Already posted? `GET /{ig-user-id}/media` lists the account's recent posts (newest first, at most
   LOOKUP_PAGES pages): one published since the publication was created, with the same caption, is this
   delivery's post from an earlier attempt whose answer was lost. It is returned and nothing is posted
   again. This is also `find_sent`, the lookup the worker makes after an attempt of unknown outcome.
2. A container this process made for the delivery on an earlier attempt is reused while it is FINISHED
   or IN_PROGRESS; when PUBLISHED (but not listed yet), the delivery waits for step 1 to find it.
3. `GET /{ig-user-id}/content_publishing_limit`: at the quota, the delivery waits (transient, long).
4. Containers: one image (`image_url`, `caption`, `alt_text`), or a carousel of 2-10 images: one child per
   image (`is_carousel_item`, `alt_text`), then the parent (`media_type=CAROUSEL`, `children`, `caption`).
5. `status_code` polled until FINISHED, a few seconds in all (`poll_delays`), else transient: the queue
   brings the delivery back later.
6. `POST /{ig-user-id}/media_publish` (`creation_id`). When its answer is lost (timeout, 5xx), the
   container's `status_code` says whether it was published; if it was, the post is found as in step 1.
7. `GET /{media-id}?fields=permalink` for the public URL.

Idempotency: Instagram takes no idempotency key and lists no containers, so a retry in a new Lambda
invocation cannot know the previous attempt's container id: it asks for the account's recent posts
instead (step 1), and the in-process memory of step 2 only saves containers within one warm container.
Remaining risks: a post that Instagram has published but does not list yet when the retry runs would be
posted twice (in practice Instagram lists a post once `media_publish` has answered); two publications of the commune
with the same caption in flight at once would be taken for one; abandoned containers expire after 24 h.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar, cast

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
    RetractUnsupported,
    SentPost,
    SkipDelivery,
    TransientChannelError,
    provider_base_url,
    retry_after_seconds,
)
from crieur.channels.graph import (
    GRAPH_API_VERSION,
    PERMISSION_CODES,
    TOKEN_CODE,
    GraphError,
    call_graph,
    regain_access_seconds,
)
from crieur.channels.lookup import CLOCK_MARGIN_SECONDS, LOOKUP_PAGES, lookup_failures
from crieur.media import FetchedMedia, MediaUnavailable
from crieur.models import Media, Publication
from crieur.render.instagram import CAPTION_LIMIT, MAX_HASHTAGS, cap_hashtags, hashtag_positions
from crieur.render.text import compose, nfc, url_spans

DEFAULT_BASE_URL = "https://graph.instagram.com"
MAX_IMAGES = 10
MAX_IMAGE_BYTES = 8 * 1024 * 1024
RECENT_POSTS = 25
PUBLISHING_LIMIT_WAIT_SECONDS = 3600
PROCESSING_WAIT_SECONDS = 30
UNEXPECTED_CODES = frozenset({-2, -1})
"""Instagram's unexpected-error codes, which it asks to retry (besides Graph's transient ones)."""
# Subcodes Meta documents as "try again" (download timeout, server error, expired or not yet ready media).
TRANSIENT_SUBCODES = frozenset({2207001, 2207003, 2207008, 2207020, 2207027, 2207032, 2207053})
PUBLISHING_LIMIT_SUBCODE = 2207042
MEDIA_CODES = frozenset({352, 9004, 36000, 36001, 36003, 36004})
MEDIA_REASONS: dict[int, str] = {
    2207004: "l'image dépasse 8 Mo",
    2207005: "le format de l'image n'est pas accepté (JPEG uniquement)",
    2207009: "les proportions de l'image sont hors des limites (de 4:5 à 1,91:1)",
    2207010: "la légende est trop longue (2 200 caractères au plus)",
    2207023: "le type de média n'est pas reconnu",
    2207026: "le format de la vidéo n'est pas accepté",
    2207028: "le carrousel n'est pas valide (de 2 à 10 images)",
    2207052: "l'image n'a pas pu être téléchargée depuis son adresse (elle doit être publique, en JPEG)",
}
SKIP_PREFIX = "Instagram n'accepte que des publications avec une image JPEG"
RECONNECT = "Reconnectez le compte Instagram"
TOKEN_REASONS: dict[int, str] = {
    458: "l'accès de Crieur a été retiré du compte",
    460: "le mot de passe du compte a changé",
    463: "le jeton a expiré",
    467: "le jeton n'est plus valide",
}
MIME_NAMES = {"image/png": "PNG", "image/gif": "GIF", "image/webp": "WebP"}

_containers: dict[tuple[str, str], str] = {}
"""(ig_user_id, delivery_id) → the container to publish, for a retry in the same process."""


class InstagramSettings(ChannelSettings):
    ig_user_id: str

    @field_validator("ig_user_id")
    @classmethod
    def _numeric(cls, value: str) -> str:
        if not value.isascii() or not value.isdigit():
            raise ValueError("L'identifiant du compte Instagram est un nombre, par exemple 17841400000000000.")
        return value


class InstagramCredentials(ChannelCredentials):
    access_token: str


class InstagramChannel(PostChannel[InstagramSettings, InstagramCredentials]):
    name: ClassVar = "instagram"
    label: ClassVar = "Instagram"
    settings_model: ClassVar = InstagramSettings
    credentials_model: ClassVar = InstagramCredentials
    poll_delays: ClassVar[tuple[float, ...]] = (0.5, 1.0, 1.0, 1.5)
    """Pauses between status polls within one `send`: about four seconds, then the queue retries later."""

    def max_length(self) -> int:
        return CAPTION_LIMIT

    def override_problem(self, text: str) -> str | None:
        hashtags = len(hashtag_positions(nfc(text)))
        if hashtags > MAX_HASHTAGS:
            return f"Trop de hashtags pour Instagram : {hashtags}, au plus {MAX_HASHTAGS}."
        return super().override_problem(text)

    # -- render --------------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        decisions = [self._decide(medium) for medium in publication.media]
        kept = [decision for decision in decisions if decision.kept]
        for extra in kept[MAX_IMAGES:]:
            extra.kept = False
            extra.reason = f"Au-delà de {MAX_IMAGES} images : Instagram n'en accepte pas plus par publication."
        kept = kept[:MAX_IMAGES]
        if not kept:
            if not decisions:
                raise SkipDelivery(f"{SKIP_PREFIX} : cette publication n'a pas d'image.")
            reasons = " ".join(f"{decision.url} — {decision.reason}" for decision in decisions)
            raise SkipDelivery(f"{SKIP_PREFIX} : aucune image de cette publication ne convient. {reasons}")
        override = publication.overrides.get("instagram")
        text = override.text if override else None
        composed = compose(publication, CAPTION_LIMIT, len, override=text, hashtag=True)
        if len(hashtag_positions(composed)) > MAX_HASHTAGS:  # the category's tag goes before the author's do
            composed = compose(publication, CAPTION_LIMIT, len, override=text)
        caption, unmarked = cap_hashtags(composed)
        warnings = []
        if unmarked:
            warnings.append(
                f"Instagram accepte au plus {MAX_HASHTAGS} hashtags : {unmarked} mot(s) sont publiés sans « # »."
            )
        if url_spans(caption):
            warnings.append("Les liens ne sont pas cliquables dans une légende Instagram.")
        return RenderedPost(
            text=caption,
            length=len(caption),
            limit=CAPTION_LIMIT,
            media=decisions,
            warnings=warnings,
            payload={
                "caption": caption,
                "images": [{"url": decision.url, "alt": decision.alt} for decision in kept],
                "created_at": publication.created_at.isoformat(),
            },
        )

    def _decide(self, medium: Media) -> MediaDecision:
        url, alt = str(medium.url), medium.alt
        if medium.kind == "video":
            return MediaDecision(
                url=url, alt=alt, kept=False, reason="Vidéo : Crieur ne publie que des images sur Instagram."
            )
        try:
            fetched = self.media.fetch(medium)
        except MediaUnavailable as unavailable:
            if unavailable.transient:
                raise TransientChannelError("media_unavailable", unavailable.reason) from unavailable
            return MediaDecision(url=url, alt=alt, kept=False, reason=unavailable.reason)
        reason = _image_problem(fetched)
        return MediaDecision(url=url, alt=alt, kept=reason is None, reason=reason)

    # -- send ----------------------------------------------------------------------------------------------

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        caption: str = rendered.payload["caption"]
        since = datetime.fromisoformat(rendered.payload["created_at"]).replace(microsecond=0)
        key = (self.settings.ig_user_id, delivery_id)
        try:
            posted = self._find_post(caption, since) or self._publish(key, rendered.payload["images"], caption, since)
        except PermanentChannelError:
            _containers.pop(key, None)
            raise
        _containers.pop(key, None)
        return posted

    def _publish(self, key: tuple[str, str], images: list[dict[str, str]], caption: str, since: datetime) -> SentPost:
        delays = iter(self.poll_delays)
        container = self._reusable(_containers.get(key))
        if container is None:
            self._check_publishing_limit()
            container = _containers[key] = self._create_containers(images, caption, delays)
        self._wait_finished([container], delays)
        try:
            published = self._call("POST", f"{self.settings.ig_user_id}/media_publish", {"creation_id": container})
        except TransientChannelError:
            # The answer may be lost while the post exists: the container's state tells which.
            if self._status(container)[0] == "PUBLISHED" and (posted := self._find_post(caption, since)):
                return posted
            raise
        media_id = str(published["id"])
        return SentPost(external_id=media_id, url=self._permalink(media_id))

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The account's post since the publication was created with the rendered caption (step 1). None also
        means that no container this process made for the delivery is published: one published but not listed
        yet is a TransientChannelError, as is a lookup Instagram does not answer."""
        caption: str = rendered.payload["caption"]
        since = datetime.fromisoformat(rendered.payload["created_at"]).replace(microsecond=0)
        with lookup_failures(self.label):
            posted = self._find_post(caption, since)
            if posted is None:
                self._reusable(_containers.get((self.settings.ig_user_id, delivery_id)))  # raises if PUBLISHED
        return posted

    def _find_post(self, caption: str, since: datetime) -> SentPost | None:
        """This caption's post published since `since` (the publication's creation, less the clock margin), if
        any: the account's media newest first, page after page until older ones (LOOKUP_PAGES at most)."""
        since -= timedelta(seconds=CLOCK_MARGIN_SECONDS)
        wanted = nfc(caption).strip()
        params = {"fields": "id,caption,permalink,timestamp", "limit": str(RECENT_POSTS)}
        for _ in range(LOOKUP_PAGES):
            listed = self._call("GET", f"{self.settings.ig_user_id}/media", params=params)
            older = False
            for post in listed.get("data", []):
                published = datetime.strptime(str(post.get("timestamp", "")), "%Y-%m-%dT%H:%M:%S%z")
                older = older or published < since
                if published >= since and nfc(str(post.get("caption", ""))).strip() == wanted:
                    return SentPost(external_id=str(post["id"]), url=post.get("permalink"))
            paging = listed.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if older or not paging.get("next") or not after:
                break
            params["after"] = after
        return None

    def _reusable(self, container: str | None) -> str | None:
        """An earlier attempt's container, when it can still be published."""
        if container is None:
            return None
        try:
            status, _ = self._status(container)
        except PermanentChannelError:
            return None
        if status == "PUBLISHED":
            raise TransientChannelError(
                "not_listed_yet",
                "Instagram a publié l'image mais ne la liste pas encore : nouvelle vérification automatique.",
                retry_after=PROCESSING_WAIT_SECONDS,
            )
        return container if status in ("FINISHED", "IN_PROGRESS") else None

    def _check_publishing_limit(self) -> None:
        limits = self._call(
            "GET", f"{self.settings.ig_user_id}/content_publishing_limit", params={"fields": "quota_usage,config"}
        )
        for limit in limits.get("data", []):
            total = limit.get("config", {}).get("quota_total")
            if total is not None and int(limit.get("quota_usage", 0)) >= int(total):
                raise _publishing_limit(f"quota_usage {limit.get('quota_usage')} / quota_total {total}")

    def _create_containers(self, images: list[dict[str, str]], caption: str, delays: Iterator[float]) -> str:
        account = self.settings.ig_user_id
        if len(images) == 1:
            body = {"image_url": images[0]["url"], "caption": caption, "alt_text": images[0]["alt"]}
            return str(self._call("POST", f"{account}/media", body)["id"])
        children = [str(self._call("POST", f"{account}/media", _child(image))["id"]) for image in images]
        self._wait_finished(children, delays)
        body = {"media_type": "CAROUSEL", "children": ",".join(children), "caption": caption}
        return str(self._call("POST", f"{account}/media", body)["id"])

    def _wait_finished(self, containers: list[str], delays: Iterator[float]) -> None:
        """Polls until every container is FINISHED; ERROR or EXPIRED is final; too long is transient."""
        pending = list(containers)
        while True:
            for container in list(pending):
                status, detail = self._status(container)
                if status == "FINISHED":
                    pending.remove(container)
                elif status in ("ERROR", "EXPIRED"):
                    raise PermanentChannelError(
                        "media_rejected",
                        "Instagram n'a pas pu traiter l'image : vérifiez qu'elle est publique, en JPEG, de 8 Mo "
                        f"au plus et aux proportions acceptées (de 4:5 à 1,91:1). État : {status}.",
                        detail or status,
                    )
            if not pending:
                return
            delay = next(delays, None)
            if delay is None:
                raise TransientChannelError(
                    "processing",
                    "Instagram prépare encore l'image : nouvel essai automatique dans un instant.",
                    retry_after=PROCESSING_WAIT_SECONDS,
                )
            time.sleep(delay)

    def _status(self, container: str) -> tuple[str, str | None]:
        found = self._call("GET", container, params={"fields": "status_code,status"})
        return str(found.get("status_code", "")), found.get("status")

    def _permalink(self, media_id: str) -> str | None:
        """The post's public URL; the post exists even when this lookup fails, so that is not an error."""
        try:
            return self._call("GET", media_id, params={"fields": "permalink"}).get("permalink")
        except ChannelError:
            return None

    # -- delete, check -------------------------------------------------------------------------------------

    def delete(self, external_id: str) -> None:
        raise RetractUnsupported(
            "Instagram ne permet pas de supprimer une publication par l'API : supprimez-la depuis l'application."
        )

    def check(self) -> ChannelCheck:
        try:
            account = self._call("GET", self.settings.ig_user_id, params={"fields": "id,username,name,account_type"})
        except ChannelError as refused:
            return ChannelCheck(ok=False, message=refused.message)
        handle = f"@{account.get('username', '?')}"
        try:
            limits = self._call(
                "GET", f"{self.settings.ig_user_id}/content_publishing_limit", params={"fields": "quota_usage,config"}
            )
        except ChannelError as refused:
            return ChannelCheck(
                ok=False,
                account=handle,
                message=f"Le jeton ouvre le compte {handle}, mais le droit d'y publier n'a pas pu être vérifié : "
                f"{refused.message}",
                permissions=["instagram_business_basic"],
            )
        usage: dict[str, Any] = next(iter(limits.get("data", [])), {})
        total = usage.get("config", {}).get("quota_total")
        quota = f" ({usage.get('quota_usage', 0)} publication(s) sur {total} permises en 24 h)" if total else ""
        return ChannelCheck(
            ok=True,
            account=handle,
            message=f"Le compte Instagram {handle} est joignable et Crieur peut y publier{quota}.",
            permissions=["instagram_business_basic", "instagram_business_content_publish"],
        )

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One Graph API call; its error body refines the classification that `call_provider` makes."""
        base = provider_base_url("INSTAGRAM", DEFAULT_BASE_URL)
        request = self.http.build_request(
            method,
            f"{base}/{GRAPH_API_VERSION}/{path}",
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.credentials.access_token}"},
        )
        response = call_graph(self.http, self.label, request, _refine)
        return cast(dict[str, Any], response.json())


def _child(image: dict[str, str]) -> dict[str, Any]:
    return {"image_url": image["url"], "is_carousel_item": True, "alt_text": image["alt"]}


def _image_problem(image: FetchedMedia) -> str | None:
    """Why Instagram would refuse this image, in French; None when it takes it."""
    if image.mime != "image/jpeg":
        kind = MIME_NAMES.get(image.mime, image.mime)
        return f"Format {kind} : Instagram n'accepte que le JPEG."
    if image.size > MAX_IMAGE_BYTES:
        weight = f"{image.size / (1024 * 1024):.1f}".replace(".", ",")
        return f"Image de {weight} Mo : Instagram en accepte 8 Mo au plus."
    width, height = image.width or 0, image.height or 0
    # From 4:5 (portrait) to 1.91:1 (landscape), bounds included, in integers so that 1080×1350 passes.
    if not (width and height and 4 * height <= 5 * width and 100 * width <= 191 * height):
        return f"Proportions {width}×{height} hors des limites d'Instagram : de 4:5 (portrait) à 1,91:1 (paysage)."
    return None


def _publishing_limit(detail: str) -> TransientChannelError:
    return TransientChannelError(
        "publishing_limit",
        "Le compte Instagram a atteint son quota de publications sur 24 heures : nouvel essai automatique "
        "dans une heure.",
        detail,
        retry_after=PUBLISHING_LIMIT_WAIT_SECONDS,
    )


def _refine(failure: ChannelError, response: httpx.Response) -> ChannelError:  # noqa: PLR0911 - one per error family
    """The Graph error body (its code, subcode and message) says more than the HTTP status."""
    graph = GraphError.of(response)
    if graph is None:
        return failure
    code, subcode = graph.code, graph.subcode
    detail = " ".join(text for text in (graph.message, graph.user_message) if text)[:500]
    status = response.status_code
    if code == TOKEN_CODE:
        reason = TOKEN_REASONS.get(subcode or 0, "le jeton n'est plus valide")
        return PermanentChannelError("needs_reconnect", f"{RECONNECT} : {reason}.", detail, status)
    if code in PERMISSION_CODES:
        return PermanentChannelError(
            "needs_reconnect",
            f"{RECONNECT} en autorisant la publication : une permission manque au jeton.",
            detail,
            status,
        )
    if subcode == PUBLISHING_LIMIT_SUBCODE:
        return _publishing_limit(detail)
    if graph.throttled:
        return TransientChannelError(
            "rate_limited",
            "Instagram limite le nombre d'appels : nouvel essai automatique plus tard.",
            detail,
            regain_access_seconds(response) or retry_after_seconds(response),
            status,
        )
    if subcode in TRANSIENT_SUBCODES or code in UNEXPECTED_CODES or graph.retryable:
        return TransientChannelError(
            "provider_unavailable",
            "Instagram n'a pas pu traiter la demande pour l'instant : nouvel essai automatique.",
            detail,
            retry_after_seconds(response),
            status,
        )
    if subcode in MEDIA_REASONS or code in MEDIA_CODES:
        reason = MEDIA_REASONS.get(subcode or 0, detail)
        return PermanentChannelError("media_rejected", f"Instagram a refusé la publication : {reason}.", detail, status)
    if subcode == 2207050:
        return PermanentChannelError(
            "account_restricted",
            "Le compte Instagram est inactif ou restreint : ouvrez l'application Instagram et suivez ses "
            "instructions pour le débloquer.",
            detail,
            status,
        )
    if subcode == 2207051:
        return PermanentChannelError(
            "blocked", "Instagram a bloqué cette publication comme indésirable.", detail, status
        )
    if isinstance(failure, TransientChannelError):
        return failure
    return PermanentChannelError("rejected", f"Instagram a refusé la publication : {detail}", detail, status)
