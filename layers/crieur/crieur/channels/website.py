"""Website channel: the commune's public feeds and widget, hosted by Crieur in an S3 bucket.

Every send or retraction updates a small JSON index (`{commune}/index.json`, the latest entries only) and
regenerates from it, never from the publication history: feed.atom, feed.rss, feed.json (JSON Feed 1.1),
events.ics (RFC 5545), alerts.atom (CAP 1.2 entries) and the embeddable widget (widget.js, widget.html).
XML is built by feedgen and ElementTree, the calendar by icalendar, HTML by ElementTree: every text is
escaped by a serializer, never pasted into a template. The API serves the files at /public/{commune}/….
"""

from __future__ import annotations

import json
import mimetypes
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]
from icalendar import Calendar, Timezone
from icalendar import Event as CalendarEvent
from pydantic import AnyUrl, Field, field_validator

from crieur import aws
from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    PermanentChannelError,
    PostChannel,
    RenderedPost,
    SentPost,
    TransientChannelError,
)
from crieur.models import PARIS, Publication, utc_now

FEED_SIZE = 50
ALERT_CATEGORIES = ("alert", "weather")
DEFAULT_ALERT_LIFETIME = timedelta(hours=24)
"""CAP requires an end: an alert published without `expires_at` is current for a day."""

CONTENT_TYPES: dict[str, str] = {
    "feed.atom": "application/atom+xml; charset=utf-8",
    "feed.rss": "application/rss+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
    "events.ics": "text/calendar; charset=utf-8",
    "alerts.atom": "application/atom+xml; charset=utf-8",
    "widget.js": "text/javascript; charset=utf-8",
    "widget.html": "text/html; charset=utf-8",
}
"""The public files, by name: the API serves these and nothing else."""

INDEX = "index.json"
MAX_INDEX_ATTEMPTS = 8
CONCURRENT_WRITE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
"""S3's answers when a conditional write lost to another writer."""
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_URGENCY = {"critical": ("Immediate", "Extreme"), "high": ("Expected", "Severe"), "normal": ("Future", "Moderate")}
URGENCY_LABEL = {"critical": "Alerte critique", "high": "Alerte importante", "normal": "Alerte"}
# Text on background, all above the WCAG AA 4.5:1 ratio.
URGENCY_COLOURS = {
    "critical": ("#ffffff", "#a4161a"),
    "high": ("#000000", "#f4a261"),
    "normal": ("#000000", "#ffe066"),
}


def public_bucket() -> str:
    bucket = os.environ.get("CRIEUR_PUBLIC_BUCKET")
    if not bucket:
        raise PermanentChannelError("not_configured", "Le site public de Crieur n'est pas configuré (compartiment).")
    return bucket


def public_base_url() -> str:
    """Where the API serves /public/…: the deployment's API URL (CRIEUR_PUBLIC_BASE_URL)."""
    return os.environ.get("CRIEUR_PUBLIC_BASE_URL", "http://127.0.0.1:3000").rstrip("/")


def public_url(commune: str, name: str) -> str:
    return f"{public_base_url()}/public/{commune}/{name}"


def public_object(commune: str, name: str, *, head: bool = False) -> dict[str, Any] | None:
    """S3's answer for one public file (GetObject, or HeadObject), None when it does not exist (yet)."""
    call = aws.s3().head_object if head else aws.s3().get_object
    try:
        answer: dict[str, Any] = call(Bucket=public_bucket(), Key=f"{commune}/{name}")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return answer


def read_public(commune: str, name: str) -> bytes | None:
    """One public file's bytes, or None when it does not exist (yet)."""
    answer = public_object(commune, name)
    return None if answer is None else bytes(answer["Body"].read())


class WebsiteSettings(ChannelSettings):
    title: str | None = Field(default=None, max_length=200)
    site_url: AnyUrl | None = None

    @field_validator("site_url")
    @classmethod
    def _https(cls, url: AnyUrl | None) -> AnyUrl | None:
        if url is not None and url.scheme != "https":
            raise ValueError("L'adresse doit commencer par https://.")
        return url


class WebsiteCredentials(ChannelCredentials):
    """Hosted by Crieur: nothing to connect."""


def _entry(publication: Publication) -> dict[str, Any]:
    """What the index keeps of a publication: enough for every artefact, nothing private."""
    published = utc_now()
    expires = publication.expires_at
    if expires is None and publication.category in ALERT_CATEGORIES:
        expires = published + DEFAULT_ALERT_LIFETIME
    return {
        "id": publication.id,
        "title": publication.title,
        "body": publication.body,
        "category": publication.category,
        "urgency": publication.urgency,
        "links": [link.model_dump(mode="json") for link in publication.links],
        "media": [medium.model_dump(mode="json") for medium in publication.media],
        "event": publication.event.model_dump(mode="json") if publication.event else None,
        "published_at": published.isoformat(),
        "created_at": publication.created_at.isoformat(),
        "expires_at": expires.isoformat() if expires else None,
    }


def image_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _cap_time(value: datetime) -> str:
    """CAP dateTime: an explicit offset, no fraction, never "Z"."""
    return value.astimezone(PARIS).replace(microsecond=0).isoformat()


class WebsiteChannel(PostChannel[WebsiteSettings, WebsiteCredentials]):
    name: ClassVar = "website"
    label: ClassVar = "Le site de la commune"
    settings_model: ClassVar = WebsiteSettings
    credentials_model: ClassVar = WebsiteCredentials

    def render(self, publication: Publication) -> RenderedPost:
        return RenderedPost(
            text=publication.title, payload={"commune": publication.commune, "entry": _entry(publication)}
        )

    # --- the index --------------------------------------------------------------------------------------

    def _load(self, commune: str) -> tuple[dict[str, Any], str | None]:
        """The index and its ETag (None when the commune has none yet)."""

        def read() -> tuple[dict[str, Any], str | None]:
            answer = public_object(commune, INDEX)
            if answer is None:
                return {"entries": [], "cancelled": []}, None
            index: dict[str, Any] = json.loads(answer["Body"].read())
            return index, str(answer["ETag"])

        loaded: tuple[dict[str, Any], str | None] = self._call(read)
        return loaded

    def _commit(self, commune: str, index: dict[str, Any], etag: str | None) -> str | None:
        """Writes the index only if nobody changed it since it was read (S3 conditional write); the new
        ETag, or None when another delivery got there first."""
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}

        def write() -> str | None:
            try:
                answer = aws.s3().put_object(
                    Bucket=public_bucket(),
                    Key=f"{commune}/{INDEX}",
                    Body=json.dumps(index, ensure_ascii=False).encode(),
                    ContentType="application/json",
                    CacheControl="no-store",
                    **condition,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in CONCURRENT_WRITE:
                    return None
                raise
            return str(answer["ETag"])

        committed: str | None = self._call(write)
        return committed

    def _current_etag(self, commune: str) -> str | None:
        answer = self._call(lambda: public_object(commune, INDEX, head=True))
        return None if answer is None else str(answer["ETag"])

    def _update(self, commune: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Applies `change` to the index and regenerates every artefact from it, safe against concurrent
        deliveries for the same commune: the index is committed with a conditional write (a lost race
        re-reads and re-applies), and whoever finds the index moved on after writing the artefacts
        regenerates them from the newer index, so the last writer always leaves artefacts that match it."""
        for _ in range(MAX_INDEX_ATTEMPTS):
            index, etag = self._load(commune)
            change(index)
            committed = self._commit(commune, index, etag)
            if committed is None:
                continue
            while True:
                self._publish(commune, index)
                if self._current_etag(commune) == committed:
                    return
                index, latest = self._load(commune)
                if latest is None:
                    return
                committed = latest
        raise TransientChannelError(
            "busy", "Le site public est mis à jour par un autre envoi : nouvel essai automatique.", commune
        )

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except (ClientError, BotoCoreError) as failure:
            raise TransientChannelError(
                "storage_unavailable",
                "Le stockage du site public est indisponible : nouvel essai automatique.",
                str(failure),
            ) from failure

    def _put(self, commune: str, name: str, body: bytes, content_type: str) -> None:
        self._call(
            lambda: aws.s3().put_object(
                Bucket=public_bucket(),
                Key=f"{commune}/{name}",
                Body=body,
                ContentType=content_type,
                CacheControl="public, max-age=60",
            )
        )

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        commune, entry = rendered.payload["commune"], rendered.payload["entry"]

        def add(index: dict[str, Any]) -> None:
            entries = [kept for kept in index["entries"] if kept["id"] != entry["id"]]
            entries.insert(0, entry)
            entries.sort(key=lambda kept: kept["published_at"], reverse=True)
            index["entries"] = entries[:FEED_SIZE]
            index["cancelled"] = [gone for gone in index["cancelled"] if gone["id"] != entry["id"]]

        self._update(commune, add)
        return SentPost(
            external_id=f"{public_url(commune, 'feed.atom')}#{entry['id']}", url=public_url(commune, "widget.html")
        )

    def delete(self, external_id: str) -> None:
        """Removes the entry (a current alert leaves a CAP Cancel until it would have expired) and regenerates."""
        feed, _, publication_id = external_id.partition("#")
        commune = feed.rstrip("/").split("/")[-2]

        def remove(index: dict[str, Any]) -> None:
            now = utc_now()
            removed = [entry for entry in index["entries"] if entry["id"] == publication_id]
            index["entries"] = [entry for entry in index["entries"] if entry["id"] != publication_id]
            for entry in removed:
                if entry["category"] in ALERT_CATEGORIES and entry["expires_at"] and _when(entry["expires_at"]) > now:
                    index["cancelled"].append({**entry, "cancelled_at": now.isoformat()})
            index["cancelled"] = [gone for gone in index["cancelled"] if _when(gone["expires_at"]) > now]

        self._update(commune, remove)

    def check(self) -> ChannelCheck:
        public_bucket()
        return ChannelCheck(ok=True, account=self.settings.title, message="Le site public de Crieur est prêt.")

    # --- the artefacts ----------------------------------------------------------------------------------

    def _publish(self, commune: str, index: dict[str, Any]) -> None:
        title = self.settings.title or f"Actualités de la commune {commune}"
        entries = index["entries"]
        now = utc_now()
        alerts = [
            entry
            for entry in entries
            if entry["category"] in ALERT_CATEGORIES
            and (entry["expires_at"] is None or _when(entry["expires_at"]) > now)
        ]
        fragment = widget_fragment(title, entries, alerts)
        files = {
            "feed.atom": atom_feed(commune, title, self._home(commune), entries),
            "feed.rss": self._feed(commune, title, entries).rss_str(pretty=True),
            "feed.json": json_feed(commune, title, self._home(commune), entries),
            "events.ics": calendar(title, entries),
            "alerts.atom": cap_feed(commune, title, alerts, index["cancelled"]),
            "widget.html": widget_page(title, fragment),
            "widget.js": widget_script(fragment),
        }
        for name, body in files.items():
            self._put(commune, name, body, CONTENT_TYPES[name])

    def _home(self, commune: str) -> str:
        return str(self.settings.site_url) if self.settings.site_url else public_url(commune, "widget.html")

    def _feed(self, commune: str, title: str, entries: list[dict[str, Any]]) -> Any:
        """RSS 2.0 by feedgen (its Atom output drops the rel and title of entry links: see atom_feed)."""
        feed = FeedGenerator()
        feed.id(public_url(commune, "feed.atom"))
        feed.title(title)
        feed.description(title)
        feed.language("fr")
        feed.link(href=self._home(commune), rel="alternate")
        feed.link(href=public_url(commune, "feed.atom"), rel="self")
        feed.updated(_when(entries[0]["published_at"]) if entries else utc_now())
        for entry in reversed(entries):  # feedgen adds each entry at the top
            item = feed.add_entry()
            link = f"{public_url(commune, 'widget.html')}#{entry['id']}"
            item.id(f"urn:crieur:{entry['id']}")
            item.guid(f"urn:crieur:{entry['id']}", permalink=False)
            item.title(entry["title"])
            item.link(href=link, rel="alternate")
            alts = [f"Image : {medium['alt']}" for medium in entry["media"] if medium["kind"] == "image"]
            item.description("\n\n".join([entry["body"], *alts]))
            item.published(_when(entry["published_at"]))
            item.updated(_when(entry["published_at"]))
            item.category(term=entry["category"])
            images = [medium for medium in entry["media"] if medium["kind"] == "image"]
            if images:  # RSS allows one enclosure per item
                item.enclosure(images[0]["url"], "0", image_type(images[0]["url"]))
        return feed


def _atom_entry(feed: ET.Element, commune: str, entry: dict[str, Any]) -> None:
    atom = f"{{{ATOM_NS}}}"
    item = _sub(feed, f"{atom}entry")
    _sub(item, f"{atom}id", f"urn:crieur:{entry['id']}")
    _sub(item, f"{atom}title", entry["title"])
    _sub(item, f"{atom}published", _cap_time(_when(entry["published_at"])))
    _sub(item, f"{atom}updated", _cap_time(_when(entry["published_at"])))
    _sub(item, f"{atom}link", rel="alternate", href=f"{public_url(commune, 'widget.html')}#{entry['id']}")
    _sub(item, f"{atom}category", term=entry["category"])
    for medium in entry["media"]:
        if medium["kind"] == "image":  # the alt text travels as the enclosure's title
            _sub(
                item,
                f"{atom}link",
                rel="enclosure",
                href=medium["url"],
                type=image_type(medium["url"]),
                title=medium["alt"],
            )
    _sub(item, f"{atom}content", entry["body"], type="text")


def atom_feed(commune: str, title: str, home: str, entries: list[dict[str, Any]]) -> bytes:
    ET.register_namespace("", ATOM_NS)
    atom = f"{{{ATOM_NS}}}"
    feed = ET.Element(f"{atom}feed", {"{http://www.w3.org/XML/1998/namespace}lang": "fr"})
    _sub(feed, f"{atom}id", public_url(commune, "feed.atom"))
    _sub(feed, f"{atom}title", title)
    _sub(feed, f"{atom}updated", _cap_time(_when(entries[0]["published_at"]) if entries else utc_now()))
    _sub(feed, f"{atom}link", rel="self", href=public_url(commune, "feed.atom"))
    _sub(feed, f"{atom}link", rel="alternate", href=home)
    author = _sub(feed, f"{atom}author")
    _sub(author, f"{atom}name", title)
    for entry in entries:
        _atom_entry(feed, commune, entry)
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


def json_feed(commune: str, title: str, home: str, entries: list[dict[str, Any]]) -> bytes:
    items = []
    for entry in entries:
        images = [medium for medium in entry["media"] if medium["kind"] == "image"]
        item: dict[str, Any] = {
            "id": entry["id"],
            "url": f"{public_url(commune, 'widget.html')}#{entry['id']}",
            "title": entry["title"],
            "content_text": entry["body"],
            "date_published": entry["published_at"],
            "tags": [entry["category"]],
            "language": "fr",
            "_crieur": {"category": entry["category"], "urgency": entry["urgency"], "media": entry["media"]},
        }
        if images:
            item["image"] = images[0]["url"]
            item["attachments"] = [
                {"url": medium["url"], "mime_type": image_type(medium["url"]), "title": medium["alt"]}
                for medium in images
            ]
        if entry["event"]:
            item["_crieur"]["event"] = entry["event"]
        items.append(item)
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": home,
        "feed_url": public_url(commune, "feed.json"),
        "language": "fr",
        "items": items,
    }
    return json.dumps(feed, ensure_ascii=False, indent=1).encode()


def calendar(title: str, entries: list[dict[str, Any]]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Crieur//Agenda de la commune//FR")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", title)
    cal.add("x-wr-timezone", "Europe/Paris")
    cal.add_component(Timezone.from_tzid("Europe/Paris"))
    for entry in entries:
        if not entry["event"]:
            continue
        event = CalendarEvent()
        event.add("uid", entry["id"])
        event.add("dtstamp", _when(entry["published_at"]))
        event.add("summary", entry["title"])
        event.add("description", entry["body"])
        event.add("dtstart", _when(entry["event"]["starts_at"]).astimezone(PARIS))
        if entry["event"]["ends_at"]:
            event.add("dtend", _when(entry["event"]["ends_at"]).astimezone(PARIS))
        if entry["event"]["location"]:
            event.add("location", entry["event"]["location"])
        cal.add_component(event)
    body: bytes = cal.to_ical()
    return body


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _cap_alert(commune: str, entry: dict[str, Any], cancelled_at: str | None) -> ET.Element:
    cap = f"{{{CAP_NS}}}"
    alert = ET.Element(f"{cap}alert")
    sender = f"crieur-{commune}"
    identifier = f"{entry['id']}-cancel" if cancelled_at else entry["id"]
    sent = _cap_time(_when(cancelled_at or entry["published_at"]))
    _sub(alert, f"{cap}identifier", identifier)
    _sub(alert, f"{cap}sender", sender)
    _sub(alert, f"{cap}sent", sent)
    _sub(alert, f"{cap}status", "Actual")
    _sub(alert, f"{cap}msgType", "Cancel" if cancelled_at else "Alert")
    _sub(alert, f"{cap}scope", "Public")
    if cancelled_at:
        _sub(alert, f"{cap}references", f"{sender},{entry['id']},{_cap_time(_when(entry['published_at']))}")
    info = _sub(alert, f"{cap}info")
    urgency, severity = CAP_URGENCY[entry["urgency"]]
    _sub(info, f"{cap}language", "fr-FR")
    _sub(info, f"{cap}category", "Met" if entry["category"] == "weather" else "Safety")
    _sub(info, f"{cap}event", entry["title"])
    _sub(info, f"{cap}urgency", urgency)
    _sub(info, f"{cap}severity", severity)
    _sub(info, f"{cap}certainty", "Observed")
    _sub(info, f"{cap}expires", _cap_time(_when(entry["expires_at"])))
    _sub(info, f"{cap}senderName", f"Commune {commune}")
    _sub(info, f"{cap}headline", entry["title"])
    _sub(info, f"{cap}description", entry["body"])
    area = _sub(info, f"{cap}area")
    _sub(area, f"{cap}areaDesc", f"Commune {commune}")
    _sub(area, f"{cap}geocode")
    geocode = area[-1]
    _sub(geocode, f"{cap}valueName", "INSEE")
    _sub(geocode, f"{cap}value", commune)
    return alert


def cap_feed(commune: str, title: str, alerts: list[dict[str, Any]], cancelled: list[dict[str, Any]]) -> bytes:
    """Atom feed whose entries carry a CAP 1.2 alert as content (the shape alert aggregators read)."""
    ET.register_namespace("", ATOM_NS)
    ET.register_namespace("cap", CAP_NS)
    atom = f"{{{ATOM_NS}}}"
    feed = ET.Element(f"{atom}feed", {"{http://www.w3.org/XML/1998/namespace}lang": "fr"})
    _sub(feed, f"{atom}id", public_url(commune, "alerts.atom"))
    _sub(feed, f"{atom}title", f"Alertes : {title}")
    _sub(feed, f"{atom}updated", _cap_time(utc_now()))
    _sub(feed, f"{atom}link", rel="self", href=public_url(commune, "alerts.atom"))
    author = _sub(feed, f"{atom}author")
    _sub(author, f"{atom}name", f"Commune {commune}")
    items = [(entry, None) for entry in alerts] + [(gone, gone["cancelled_at"]) for gone in cancelled]
    for entry, cancelled_at in items:
        item = _sub(feed, f"{atom}entry")
        suffix = "-cancel" if cancelled_at else ""
        _sub(item, f"{atom}id", f"urn:crieur:{entry['id']}{suffix}")
        _sub(item, f"{atom}title", ("Annulée : " if cancelled_at else "") + entry["title"])
        _sub(item, f"{atom}updated", _cap_time(_when(cancelled_at or entry["published_at"])))
        _sub(item, f"{atom}summary", entry["body"])
        content = _sub(item, f"{atom}content", type="application/cap+xml")
        content.append(_cap_alert(commune, entry, cancelled_at))
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


# --- the widget ---------------------------------------------------------------------------------------------

WIDGET_CSS = """
.crieur-widget{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;max-width:40rem;line-height:1.5}
.crieur-widget h2{font-size:1.25rem;margin:0 0 .5rem}
.crieur-widget ul{list-style:none;margin:0;padding:0}
.crieur-widget li{border-top:1px solid #767676;padding:.75rem 0}
.crieur-widget .crieur-alert{padding:.75rem;border:2px solid #1a1a1a;margin-bottom:.5rem}
.crieur-widget .crieur-label{font-weight:700;display:block}
.crieur-widget h3{font-size:1.05rem;margin:0 0 .25rem}
.crieur-widget img{display:block;width:100%;height:12rem;object-fit:cover;margin:.5rem 0}
.crieur-widget a{color:#0b4f9c;text-decoration:underline}
.crieur-widget a:focus-visible,.crieur-widget [tabindex]:focus-visible{outline:3px solid #000;outline-offset:2px;
box-shadow:0 0 0 5px #ffdd00}
.crieur-widget time{color:#4a4a4a;font-size:.9rem}
.crieur-widget .crieur-alert time,.crieur-widget .crieur-alert a{color:inherit}
"""


def _item(parent: ET.Element, entry: dict[str, Any], alert: bool) -> None:
    item = _sub(parent, "li", id=f"crieur-{entry['id']}")
    if alert:
        text, background = URGENCY_COLOURS[entry["urgency"]]
        item.set("class", "crieur-alert")
        item.set("style", f"color:{text};background:{background}")
        if entry["expires_at"]:
            item.set("data-expires", entry["expires_at"])  # widget.js leaves out an alert that has expired since
        _sub(item, "span", URGENCY_LABEL[entry["urgency"]], **{"class": "crieur-label"})
    _sub(item, "h3", entry["title"])
    published = _when(entry["published_at"]).astimezone(PARIS)
    _sub(item, "time", published.strftime("Publié le %d/%m/%Y à %H:%M"), datetime=published.isoformat())
    if entry["event"]:
        starts = _when(entry["event"]["starts_at"]).astimezone(PARIS)
        where = f", {entry['event']['location']}" if entry["event"]["location"] else ""
        _sub(item, "p", f"Le {starts.strftime('%d/%m/%Y à %H:%M')}{where}")
    for medium in entry["media"]:
        if medium["kind"] == "image":
            _sub(item, "img", src=medium["url"], alt=medium["alt"], loading="lazy", width="640", height="192")
    _sub(item, "p", entry["body"])
    for link in entry["links"]:
        _sub(item, "a", link["label"] or link["url"], href=link["url"])


def widget_fragment(title: str, entries: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> str:
    """The accessible block: alerts first (coloured and labelled by urgency), then the latest news."""
    section = ET.Element("section", {"class": "crieur-widget", "lang": "fr", "aria-label": title})
    _sub(section, "style", WIDGET_CSS)
    if alerts:
        _sub(section, "h2", "Alertes en cours")
        listed = _sub(section, "ul")
        order = {"critical": 0, "high": 1, "normal": 2}
        for entry in sorted(alerts, key=lambda alert: order[alert["urgency"]]):
            _item(listed, entry, alert=True)
    _sub(section, "h2", title)
    news = [entry for entry in entries if entry not in alerts][:10]
    if news:
        listed = _sub(section, "ul")
        for entry in news:
            _item(listed, entry, alert=False)
    else:
        _sub(section, "p", "Aucune actualité pour le moment.")
    return ET.tostring(section, encoding="unicode", method="html")


def widget_page(title: str, fragment: str) -> bytes:
    head = ET.Element("head")
    _sub(head, "meta", charset="utf-8")
    _sub(head, "meta", name="viewport", content="width=device-width, initial-scale=1")
    _sub(head, "title", title)
    page = '<!doctype html>\n<html lang="fr">' + ET.tostring(head, encoding="unicode", method="html")
    return (page + f"<body><main>{fragment}</main></body></html>\n").encode()


def widget_script(fragment: str) -> bytes:
    """Inserts the block where the secretary pasted the <script> line; the HTML travels as a JSON string.

    Alerts that expired after the block was generated are left out before it is shown (no layout shift)."""
    literal = json.dumps(fragment, ensure_ascii=True)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        literal = literal.replace(raw, escaped)
    script = (
        "(function(){var s=document.currentScript;var d=document.createElement('div');"
        f"d.innerHTML={literal};var b=d.firstElementChild;var now=Date.now();"
        "b.querySelectorAll('[data-expires]').forEach(function(i){if(now>=Date.parse(i.getAttribute('data-expires'))){"
        "var l=i.parentNode;l.removeChild(i);if(!l.children.length){var h=l.previousElementSibling;"
        "if(h&&h.tagName==='H2'){h.parentNode.removeChild(h);}l.parentNode.removeChild(l);}}});"
        "if(s&&s.parentNode){s.parentNode.insertBefore(b,s.nextSibling);}else{document.body.appendChild(b);}})();\n"
    )
    return script.encode()
