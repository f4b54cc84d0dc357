"""Amazon SES v2 as the sandbox imitates it: moto 5.2.5 has no SendBulkEmail.

Wire protocol as botocore speaks it: REST-JSON under `/v2/email`, SigV4 `Authorization` for the `ses`
service (presence and scope checked, not the signature):

- `POST /v2/email/outbound-emails` (SendEmail, `Content.Simple` with `Subject`, `Body.Text`/`Body.Html`,
  `Headers`; or `Content.Template`) → `{"MessageId"}`;
- `POST /v2/email/outbound-bulk-emails` (SendBulkEmail: `DefaultContent.Template`, 1-50
  `BulkEmailEntries` with `ReplacementTemplateData` and `ReplacementHeaders`) →
  `{"BulkEmailEntryResults": [{"Status", "MessageId" | "Error"}]}` in the order of the entries;
- `POST /v2/email/templates` (CreateEmailTemplate), `GET|PUT|DELETE /v2/email/templates/{name}`.

Templates are rendered as SES renders them: `{{name}}` replaced by the (HTML-escaped in the HTML part)
value of the merged default and replacement data, `{{{name}}}` unescaped. The sender must be a verified
identity (an address, or its domain: `verify_identity`; the demo domain is verified); otherwise
MessageRejected "Email address is not verified". `List-Unsubscribe-Post` without a `List-Unsubscribe` URL
is refused (RFC 8058). `reject_address` makes an address refused (MESSAGE_REJECTED per entry in bulk).

Errors are AWS-shaped: HTTP status, `x-amzn-ErrorType` header, body `{"__type", "message"}`:
BadRequestException (400), MessageRejected (400), NotFoundException (404), AlreadyExistsException (400),
TooManyRequestsException (429), LimitExceededException (400), SendingPausedException (400),
AccountSuspendedException (400). Faults (`inject_fault("email", status)`) apply to the two send operations:
429 TooManyRequestsException, 400 MessageRejected, 403 AccountSuspendedException, 404 NotFoundException,
5xx InternalFailure.
"""

from __future__ import annotations

import html
import json
import re
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from infra.local.imitations.sms import aws_error
from infra.local.sandbox import Fault, Reply, Request, Sandbox

SIGNING_SCOPE = "/ses/aws4_request"
DEMO_DOMAIN = "mairie-demo.fr"
DEMO_FROM = f"Mairie de démonstration <mairie@{DEMO_DOMAIN}>"
DEMO_REPLY_TO = f"accueil@{DEMO_DOMAIN}"
MAX_BULK_DESTINATIONS = 50
MAX_RECIPIENTS = 50
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_ADDRESS = re.compile(r"(?:.*<)?([^\s<>@]+@([^\s<>@]+\.[^\s<>@]+))>?\s*")
_VARIABLE = re.compile(r"\{\{\{\s*([\w.\-]+)\s*\}\}\}|\{\{\s*([\w.\-]+)\s*\}\}")

FAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("MessageRejected", "Email address is not verified."),
    403: ("AccountSuspendedException", "Your account is suspended and can no longer send email."),
    404: ("NotFoundException", "Template does not exist."),
    429: ("TooManyRequestsException", "Maximum sending rate exceeded."),
    500: ("InternalFailure", "The request processing has failed because of an unknown error."),
}


class _Refused(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.reply = aws_error(status, kind, message)


def _address(value: Any) -> tuple[str, str]:
    """(address, domain) of `Name <a@b.fr>` or `a@b.fr`; BadRequestException otherwise."""
    match = _ADDRESS.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Refused(400, "BadRequestException", "Illegal address")
    return match.group(1).lower(), match.group(2).lower()


def render(template: str, data: dict[str, Any], escape: bool) -> str:
    """SES template substitution: `{{x}}` (escaped when `escape`), `{{{x}}}` raw; a missing value is empty."""

    def value(match: re.Match[str]) -> str:
        raw, plain = match.groups()
        found = data.get(raw or plain, "")
        text = found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)
        return html.escape(text) if escape and plain else text

    return _VARIABLE.sub(value, template)


@dataclass
class _Email:
    sender: str
    to: list[str]
    reply_to: list[str]
    subject: str
    text: str | None
    html: str | None
    headers: dict[str, str]
    at: float
    bulk: bool = False
    template: str | None = None
    message_id: str = field(default_factory=lambda: f"0107{uuid.uuid4().hex}-000000")


@dataclass
class _State:
    templates: dict[str, dict[str, str]] = field(default_factory=dict)
    emails: list[_Email] = field(default_factory=list)
    verified: set[str] = field(default_factory=lambda: {DEMO_DOMAIN})
    rejected: set[str] = field(default_factory=set)


class EmailImitation:
    """SES v2 sending and templates (see the module docstring)."""

    channel: ClassVar[str] = "email"
    prefix: ClassVar[str] = "/ses"
    base_url_variable: ClassVar[str | None] = "CRIEUR_SES_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.RLock()
        self._state = _State()

    # -- demo and control ------------------------------------------------------------------------------------

    def demo_channel(self) -> dict[str, Any] | None:
        """The demo commune's email channel, once Crieur serves it (crieur.channels.ADAPTERS)."""
        from crieur.channels import ADAPTERS

        settings = {"from_address": DEMO_FROM, "reply_to": DEMO_REPLY_TO}
        return {"enabled": True, "settings": settings} if "email" in ADAPTERS else None

    def verify_identity(self, identity: str) -> None:
        """An address or a domain the account may send from."""
        with self._lock:
            self._state.verified.add(identity.lower())

    def reject_address(self, address: str) -> None:
        """SES refuses to send to this address from now on."""
        with self._lock:
            self._state.rejected.add(address.lower())

    def emails(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(item)) for item in self._state.emails]

    def templates(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {name: dict(content) for name, content in self._state.templates.items()}

    def clear(self) -> None:
        with self._lock:
            self._state.emails.clear()
            self._state.templates.clear()
            self._state.rejected.clear()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or SIGNING_SCOPE not in authorization:
            return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        try:
            body = json.loads(request.body) if request.body.strip() else {}
        except ValueError:
            return aws_error(400, "SerializationException", "Could not parse the request body.")
        try:
            if not isinstance(body, dict):
                raise _Refused(400, "BadRequestException", "A JSON object is expected.")
            return self._route(request, subpath, body)
        except _Refused as refused:
            if subpath.startswith("/v2/email/outbound"):
                self.sandbox.record(self.channel, request, refused.reply, body)
            return refused.reply

    def _route(self, request: Request, subpath: str, body: dict[str, Any]) -> Reply:  # noqa: PLR0911 - one per route
        if subpath == "/v2/email/outbound-emails" and request.method == "POST":
            return self._send_email(request, body)
        if subpath == "/v2/email/outbound-bulk-emails" and request.method == "POST":
            return self._send_bulk(request, body)
        if subpath == "/v2/email/templates" and request.method == "POST":
            return self._create_template(body)
        if subpath.startswith("/v2/email/identities/") and request.method == "GET":
            return self._identity(urllib.parse.unquote(subpath.removeprefix("/v2/email/identities/")))
        if subpath.startswith("/v2/email/templates/"):
            name = urllib.parse.unquote(subpath.removeprefix("/v2/email/templates/"))
            if request.method == "GET":
                return Reply.json(200, {"TemplateName": name, "TemplateContent": self._template(name)})
            if request.method == "PUT":
                self._template(name)
                with self._lock:
                    self._state.templates[name] = self._content(body)
                return Reply.json(200, {})
            if request.method == "DELETE":
                self._template(name)
                with self._lock:
                    del self._state.templates[name]
                return Reply.json(200, {})
        return aws_error(404, "NotFoundException", "Resource not found")

    # -- identities ------------------------------------------------------------------------------------------

    def _identity(self, identity: str) -> Reply:
        """GetEmailIdentity: a verified address or domain; any other identity does not exist in the account."""
        with self._lock:
            verified = identity.lower() in self._state.verified
        if not verified:
            raise _Refused(404, "NotFoundException", f"Email identity {identity} does not exist.")
        kind = "EMAIL_ADDRESS" if "@" in identity else "DOMAIN"
        return Reply.json(
            200,
            {
                "IdentityType": kind,
                "VerifiedForSendingStatus": True,
                "VerificationStatus": "SUCCESS",
                "FeedbackForwardingStatus": True,
                "DkimAttributes": {
                    "SigningEnabled": kind == "DOMAIN",
                    "Status": "SUCCESS" if kind == "DOMAIN" else "NOT_STARTED",
                },
            },
        )

    # -- templates -------------------------------------------------------------------------------------------

    @staticmethod
    def _content(body: dict[str, Any]) -> dict[str, str]:
        content = body.get("TemplateContent")
        if not isinstance(content, dict) or not content.get("Subject"):
            raise _Refused(400, "BadRequestException", "TemplateContent with a Subject is required.")
        if not content.get("Html") and not content.get("Text"):
            raise _Refused(400, "BadRequestException", "TemplateContent needs Html or Text.")
        return {key: str(content[key]) for key in ("Subject", "Html", "Text") if content.get(key)}

    def _create_template(self, body: dict[str, Any]) -> Reply:
        name = body.get("TemplateName")
        if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name):
            raise _Refused(400, "BadRequestException", "Invalid template name.")
        content = self._content(body)
        with self._lock:
            if name in self._state.templates:
                raise _Refused(400, "AlreadyExistsException", f"Template {name} already exists.")
            self._state.templates[name] = content
        return Reply.json(200, {})

    def _template(self, name: str) -> dict[str, str]:
        with self._lock:
            content = self._state.templates.get(name)
        if content is None:
            raise _Refused(404, "NotFoundException", f"Template {name} does not exist.")
        return dict(content)

    # -- sending ---------------------------------------------------------------------------------------------

    def _sender(self, body: dict[str, Any]) -> str:
        sender = body.get("FromEmailAddress")
        address, domain = _address(sender)
        with self._lock:
            verified = address in self._state.verified or domain in self._state.verified
        if not verified:
            raise _Refused(
                400,
                "MessageRejected",
                f"Email address is not verified. The following identities failed the check in region EU-WEST-3: "
                f"{address}",
            )
        return str(sender)

    def _fault(self) -> None:
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        if fault is not None and fault.status is not None:
            raise _Refused(*self._fault_error(fault))

    @staticmethod
    def _fault_error(fault: Fault) -> tuple[int, str, str]:
        status = fault.status or 500
        kind, message = FAULT_ERRORS.get(status, FAULT_ERRORS[500 if status >= 500 else 400])
        return status, kind, message

    @staticmethod
    def _headers(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise _Refused(400, "BadRequestException", "Headers must be a list of {Name, Value}.")
        headers = {str(item.get("Name")): str(item.get("Value")) for item in value}
        if "List-Unsubscribe-Post" in headers:
            urls = re.findall(r"<(https?://[^>]+)>", headers.get("List-Unsubscribe", ""))
            if not urls or headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click":
                raise _Refused(
                    400,
                    "BadRequestException",
                    "List-Unsubscribe-Post requires a List-Unsubscribe header with an HTTPS URL (RFC 8058).",
                )
        return headers

    def _recipients(self, destination: Any) -> list[str]:
        if not isinstance(destination, dict):
            raise _Refused(400, "BadRequestException", "Destination is required.")
        to = list(destination.get("ToAddresses") or [])
        everyone = to + list(destination.get("CcAddresses") or []) + list(destination.get("BccAddresses") or [])
        if not everyone or len(everyone) > MAX_RECIPIENTS:
            raise _Refused(400, "BadRequestException", f"Between 1 and {MAX_RECIPIENTS} recipients are required.")
        for address in everyone:
            _address(address)
        return [str(address) for address in to]

    def _is_rejected(self, recipients: list[str]) -> bool:
        with self._lock:
            return any(_address(address)[0] in self._state.rejected for address in recipients)

    def _send_email(self, request: Request, body: dict[str, Any]) -> Reply:
        sender = self._sender(body)
        to = self._recipients(body.get("Destination"))
        content = body.get("Content") or {}
        if "Simple" in content:
            simple = content["Simple"]
            subject = str((simple.get("Subject") or {}).get("Data") or "")
            text = (simple.get("Body") or {}).get("Text", {}).get("Data")
            page = (simple.get("Body") or {}).get("Html", {}).get("Data")
            headers = self._headers(simple.get("Headers"))
            template = None
        elif "Template" in content:
            template = str(content["Template"].get("TemplateName"))
            subject, text, page = self._rendered(template, content["Template"].get("TemplateData"), None)
            headers = self._headers(content["Template"].get("Headers"))
        else:
            raise _Refused(400, "BadRequestException", "Content must be Simple, Raw or Template.")
        if not subject or not (text or page):
            raise _Refused(400, "BadRequestException", "A subject and a text or HTML body are required.")
        self._fault()
        if self._is_rejected(to):
            raise _Refused(400, "MessageRejected", "The recipient address was rejected.")
        reply_to = [str(address) for address in body.get("ReplyToAddresses") or []]
        email = self._keep(_Email(sender, to, reply_to, subject, text, page, headers, request.at, template=template))
        reply = Reply.json(200, {"MessageId": email.message_id})
        self.sandbox.record(self.channel, request, reply, body, external_id=email.message_id)
        return reply

    def _rendered(self, name: str, default: Any, replacement: Any) -> tuple[str, str | None, str | None]:
        content = self._template(name)
        try:
            data = {**json.loads(default or "{}"), **json.loads(replacement or "{}")}
        except (TypeError, ValueError) as bad:
            raise _Refused(400, "BadRequestException", "TemplateData must be a JSON object.") from bad
        subject = render(content["Subject"], data, escape=False)
        text = render(content["Text"], data, escape=False) if "Text" in content else None
        page = render(content["Html"], data, escape=True) if "Html" in content else None
        return subject, text, page

    def _keep(self, email: _Email) -> _Email:
        with self._lock:
            self._state.emails.append(email)
        return email

    def _send_bulk(self, request: Request, body: dict[str, Any]) -> Reply:
        sender = self._sender(body)
        entries = body.get("BulkEmailEntries")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BULK_DESTINATIONS:
            raise _Refused(
                400, "BadRequestException", f"BulkEmailEntries must have between 1 and {MAX_BULK_DESTINATIONS} entries."
            )
        template = ((body.get("DefaultContent") or {}).get("Template")) or {}
        name = template.get("TemplateName")
        if not isinstance(name, str):
            raise _Refused(400, "BadRequestException", "DefaultContent.Template.TemplateName is required.")
        default_headers = self._headers(template.get("Headers"))
        recipients = [self._recipients(entry.get("Destination")) for entry in entries]
        self._fault()
        results: list[dict[str, str]] = []
        for entry, to in zip(entries, recipients, strict=True):
            replacement = ((entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate") or {}).get(
                "ReplacementTemplateData"
            )
            with self._lock:
                known = name in self._state.templates
            if not known:
                results.append({"Status": "TEMPLATE_NOT_FOUND", "Error": f"Template {name} does not exist."})
                continue
            if self._is_rejected(to):
                results.append({"Status": "MESSAGE_REJECTED", "Error": "The recipient address was rejected."})
                continue
            subject, text, page = self._rendered(name, template.get("TemplateData"), replacement)
            headers = {**default_headers, **self._headers(entry.get("ReplacementHeaders"))}
            reply_to = [str(address) for address in body.get("ReplyToAddresses") or []]
            email = self._keep(
                _Email(sender, to, reply_to, subject, text, page, headers, request.at, bulk=True, template=name)
            )
            results.append({"Status": "SUCCESS", "MessageId": email.message_id})
        reply = Reply.json(200, {"BulkEmailEntryResults": results})
        self.sandbox.record(self.channel, request, reply, body, count=len(entries))
        return reply

    # -- the page --------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        """Each e-mail as a mail client shows it: sender, recipient, subject, unsubscribe link, HTML and text."""
        with self._lock:
            shown = list(reversed(self._state.emails))
        cards = "".join(_card(item) for item in shown[:200]) or "<p>Aucun e-mail envoyé.</p>"
        more = f"<p>Les 200 plus récents sur {len(shown)}.</p>" if len(shown) > 200 else ""
        return (
            '<section aria-labelledby="h-email"><h2 id="h-email">E-mails</h2>'
            f"<p>{len(shown)} e-mail(s) envoyé(s).</p>{more}{cards}</section>"
        )


def _card(item: _Email) -> str:
    unsubscribe = re.findall(r"<(https?://[^>]+)>", item.headers.get("List-Unsubscribe", ""))
    link = (
        f'<p><a href="{html.escape(unsubscribe[0])}">Se désabonner</a>'
        f"{' (en un clic, RFC 8058)' if 'List-Unsubscribe-Post' in item.headers else ''}</p>"
        if unsubscribe
        else ""
    )
    rendered = (
        f'<iframe sandbox="" title="{html.escape(item.subject)} (version HTML)" srcdoc="{html.escape(item.html)}" '
        'style="width:100%;min-height:18rem;border:1px solid #ccc;background:#fff"></iframe>'
        if item.html
        else ""
    )
    text = (
        f"<details><summary>Version texte</summary><pre>{html.escape(item.text)}</pre></details>" if item.text else ""
    )
    kind = f" · envoi groupé, modèle <code>{html.escape(item.template or '')}</code>" if item.bulk else ""
    return (
        '<article style="max-width:48rem;margin:1rem 0;border:1px solid #767676;border-radius:.5rem;'
        'padding:.5rem 1rem">'
        f'<h3 style="margin:.2rem 0">{html.escape(item.subject)}</h3>'
        f"<p><small>De : {html.escape(item.sender)}<br>À : {html.escape(', '.join(item.to))}"
        + (f"<br>Répondre à : {html.escape(', '.join(item.reply_to))}" if item.reply_to else "")
        + f"{kind}</small></p>{link}{rendered}{text}"
        f"<p><small><code>{html.escape(item.message_id)}</code></small></p></article>"
    )
