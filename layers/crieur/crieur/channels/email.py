"""E-mail channel: one e-mail per confirmed subscriber, through Amazon SES v2 bulk sending.

Every publication is sent through one SES template of the deployment (`TEMPLATE_NAME`, written again
before each chunk, so a deployment always sends its own version): the publication's subject, HTML and
text are template data of the call, the recipient's one-click unsubscribe link is per-destination data.
Why not one template per publication: SES keeps at most 20,000 templates a region and France has about
35,000 communes; templates would have to be deleted after the last chunk, which no chunk knows it is, and
two publications of a commune would never share one by mistake. Everything from the publication is
HTML-escaped; images keep their alternative text; the French footer says why the citizen receives it and
carries the unsubscribe link, also given as RFC 8058 `List-Unsubscribe` + `List-Unsubscribe-Post:
List-Unsubscribe=One-Click` headers. SendBulkEmail takes 50 destinations a call; the calls are paced to
the account's sending rate (CRIEUR_SES_SENDS_PER_SECOND, shared by the concurrent invocations). Bounces
and complaints come back through SNS (functions/ses_events) and unsubscribe the address.
"""

from __future__ import annotations

import email.utils
import html
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    PermanentChannelError,
    RecipientOutcome,
    RenderedPost,
    RetractUnsupported,
    TransientChannelError,
)
from crieur.channels.pacing import Pace, share_of_rate, shared_pace
from crieur.channels.residents import ResidentsChannel
from crieur.models import Publication
from crieur.quiet_hours import is_alert
from crieur.render.text import nfc, url_spans

if TYPE_CHECKING:
    from crieur.messaging import BulkDestination, EmailGateway

TEMPLATE_NAME = "crieur-publication-v1"
RATE_VARIABLE = "CRIEUR_SES_SENDS_PER_SECOND"
DEFAULT_SENDS_PER_SECOND = 14.0
CONFIGURATION_SET_VARIABLE = "CRIEUR_SES_CONFIGURATION_SET"
"""The configuration set whose event destination sends bounces and complaints to SNS (template.yaml)."""
BULK_SIZE = 50
SUBJECT_LIMIT = 140
RETRACT = "Un e-mail envoyé ne peut pas être rappelé."
_ADDRESS = re.compile(
    r"[^@\s<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)

HTML_TEMPLATE = (
    "{{{html}}}"
    '<hr style="border:none;border-top:1px solid #767676;margin:2rem 0 1rem">'
    '<p style="font-size:.875rem;color:#3d3d3d">{{{footer}}} '
    '<a href="{{unsubscribe_url}}" style="color:#0b4f9c">Se désabonner en un clic</a>.</p>'
    "</body></html>"
)
TEXT_TEMPLATE = "{{{text}}}\n\n-- \n{{{footer}}}\nSe désabonner en un clic : {{{unsubscribe_url}}}\n"
SUBJECT_TEMPLATE = "{{{subject}}}"


def _address(value: str) -> tuple[str, str]:
    name, address = email.utils.parseaddr(value)
    if not _ADDRESS.fullmatch(address) or "@" not in value:
        raise ValueError("Adresse e-mail invalide : « adresse@commune.fr » ou « Mairie de X <adresse@commune.fr> ».")
    return name, address


class EmailSettings(ChannelSettings):
    from_address: str = Field(
        max_length=320,
        description="L'expéditeur, une adresse vérifiée dans Amazon SES : « Mairie de X <info@commune.fr> ».",
    )
    reply_to: str | None = Field(default=None, max_length=320, description="Où vont les réponses des habitants.")

    @field_validator("from_address", "reply_to")
    @classmethod
    def _valid(cls, value: str | None) -> str | None:
        if value is not None:
            _address(value)
        return value

    @property
    def sender_address(self) -> str:
        return _address(self.from_address)[1]

    @property
    def sender_name(self) -> str:
        """Who the citizen subscribed to: the display name of the sender, else its address."""
        name, address = _address(self.from_address)
        return name or address


class EmailCredentials(ChannelCredentials):
    """None: the stack's IAM role sends (ARCHITECTURE.md §5)."""


# --- the message ---------------------------------------------------------------------------------------------

_STYLE = "font-family:Arial,Helvetica,sans-serif;font-size:1rem;line-height:1.5;color:#1a1a1a;max-width:40rem"


def _linked(text: str) -> str:
    """Escaped text whose URLs are links (the link text is the URL, escaped too)."""
    out, last = [], 0
    for start, end in url_spans(text):
        url = html.escape(text[start:end], quote=True)
        out.append(html.escape(text[last:start]))
        out.append(f'<a href="{url}" style="color:#0b4f9c">{url}</a>')
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def _paragraphs(text: str) -> list[str]:
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def compose_html(publication: Publication, body: str) -> str:
    """The publication as an accessible French HTML e-mail, up to the footer (the template closes it)."""
    title = html.escape(nfc(publication.title))
    banner = (
        '<p style="background:#b00020;color:#fff;padding:.5rem 1rem;font-weight:bold">Alerte</p>'
        if is_alert(publication)
        else ""
    )
    paragraphs = "".join(
        f'<p style="margin:0 0 1rem">{_linked(block).replace(chr(10), "<br>")}</p>' for block in _paragraphs(body)
    )
    links = "".join(
        f'<li><a href="{html.escape(str(link.url), quote=True)}" style="color:#0b4f9c">'
        f"{html.escape(link.label or str(link.url))}</a></li>"
        for link in publication.links
    )
    media = "".join(
        (
            f'<p><img src="{html.escape(str(medium.url), quote=True)}" alt="{html.escape(medium.alt, quote=True)}" '
            'width="600" style="max-width:100%;height:auto;display:block"></p>'
        )
        if medium.kind == "image"
        else f'<p><a href="{html.escape(str(medium.url), quote=True)}">Vidéo : {html.escape(medium.alt)}</a></p>'
        for medium in publication.media
    )
    return (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title></head>"
        f'<body style="{_STYLE};margin:0 auto;padding:1rem">{banner}'
        f'<h1 style="font-size:1.5rem;margin:0 0 1rem">{title}</h1>{paragraphs}{media}'
        + (f"<ul>{links}</ul>" if links else "")
    )


def compose_text(publication: Publication, body: str) -> str:
    """The plain-text part: title, body, links, images described by their alternative text."""
    title = nfc(publication.title)
    lines = [("ALERTE - " if is_alert(publication) else "") + title, "=" * min(len(title), 70), "", body.strip()]
    if publication.links:
        lines += ["", *(f"{link.label} : {link.url}" if link.label else str(link.url) for link in publication.links)]
    if publication.media:
        lines += ["", *(f"[{'Image' if m.kind == 'image' else 'Vidéo'} : {m.alt}] {m.url}" for m in publication.media)]
    return "\n".join(lines)


def footer(sender_name: str) -> str:
    return f"Vous recevez ce message car vous êtes abonné(e) aux informations de {sender_name}."


class EmailChannel(ResidentsChannel[EmailSettings, EmailCredentials]):
    """One e-mail per confirmed subscriber of the publication's category; see the module docstring."""

    name: ClassVar = "email"
    label: ClassVar = "E-mail"
    settings_model: ClassVar = EmailSettings
    credentials_model: ClassVar = EmailCredentials
    medium: ClassVar = "email"
    chunk_size: ClassVar[int] = 100
    """100 recipients (two SendBulkEmail calls) at 14 a second: about 7 s, well within the function's 30 s."""

    gateway: EmailGateway | None = None
    """Amazon SES v2; the stack's client unless set."""

    def _gateway(self) -> EmailGateway:
        if self.gateway is None:
            from crieur.messaging import EmailGateway

            self.gateway = EmailGateway()
        return self.gateway

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("email")
        body = nfc((override.text if override else publication.body).strip())
        subject = nfc(publication.title)
        if is_alert(publication):
            subject = f"Alerte : {subject}"
        subject = subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 1].rstrip() + "…"
        text = compose_text(publication, body)
        data = {
            "subject": subject,
            "html": compose_html(publication, body),
            "text": text,
            "footer": footer(self.settings.sender_name),
        }
        warnings = []
        if self.settings.reply_to is None:
            warnings.append("Sans adresse de réponse (reply_to), les réponses des habitants iront à l'expéditeur.")
        return RenderedPost(
            text=text,
            length=len(text),
            warnings=warnings,
            payload={
                "commune": publication.commune,
                "publication_id": publication.id,
                "category": publication.category,
                "template_data": data,
            },
        )

    def send_chunk(self, rendered: RenderedPost, recipients: list[str]) -> list[RecipientOutcome]:
        from crieur.messaging import BulkDestination, unsubscribe_headers

        payload = rendered.payload
        commune = str(payload["commune"])
        contacts = self._subscribers().contacts(commune, "email", recipients)
        outcomes = [
            RecipientOutcome(item, "removed", detail="unsubscribed") for item in recipients if item not in contacts
        ]
        destinations = [
            BulkDestination(
                key=recipient,
                address=contacts[recipient].address,
                template_data={"unsubscribe_url": contacts[recipient].unsubscribe_url},
                headers=unsubscribe_headers(contacts[recipient].unsubscribe_url),
            )
            for recipient in recipients
            if recipient in contacts
        ]
        if not destinations:
            return outcomes
        gateway = self._gateway()
        gateway.ensure_template(TEMPLATE_NAME, SUBJECT_TEMPLATE, HTML_TEMPLATE, TEXT_TEMPLATE)
        pace = shared_pace(share_of_rate(RATE_VARIABLE, DEFAULT_SENDS_PER_SECOND))
        for start in range(0, len(destinations), BULK_SIZE):
            batch = destinations[start : start + BULK_SIZE]
            try:
                outcomes.extend(self._send_batch(gateway, pace, payload["template_data"], batch))
            except TransientChannelError as transient:
                outcomes.extend(RecipientOutcome(d.key, "retry", transient.retry_after, transient.code) for d in batch)
            except PermanentChannelError as refused:  # about the sender or the account: nobody else can get it
                if not any(outcome.result == "delivered" for outcome in outcomes):
                    raise
                rest = destinations[start:]
                outcomes.extend(RecipientOutcome(d.key, "retry", detail=refused.code) for d in rest)
                break
        return outcomes

    def _send_batch(
        self, gateway: EmailGateway, pace: Pace, data: dict[str, Any], batch: list[BulkDestination]
    ) -> list[RecipientOutcome]:
        pace.take(len(batch))
        results = gateway.send_bulk(
            self.settings.from_address,
            self.settings.reply_to,
            TEMPLATE_NAME,
            data,
            batch,
            configuration_set=os.environ.get(CONFIGURATION_SET_VARIABLE) or None,
        )
        outcomes = []
        for result in results:
            if result.status == "sent":
                outcomes.append(RecipientOutcome(result.key, "delivered"))
            elif result.status == "transient":
                outcomes.append(RecipientOutcome(result.key, "retry", detail=result.code))
            else:
                outcomes.append(RecipientOutcome(result.key, "refused", detail=result.code))
        return outcomes

    def delete(self, external_id: str) -> None:
        raise RetractUnsupported(RETRACT)

    def check(self) -> ChannelCheck:
        """Asks SES whether the sender (the address, or its domain) is a verified identity of the account."""
        address = self.settings.sender_address
        if not self._gateway().sender_verified(address):
            return ChannelCheck(
                ok=False,
                account=address,
                message=f"L'adresse {address} (ni son domaine) n'est pas vérifiée dans Amazon SES : faites-la vérifier "
                "par l'administrateur de Crieur avant d'envoyer des e-mails.",
            )
        return ChannelCheck(
            ok=True,
            account=address,
            message="Adresse d'expédition vérifiée dans Amazon SES : les e-mails partiront avec le rôle AWS de Crieur.",
        )
