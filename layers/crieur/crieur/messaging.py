"""The two AWS messaging APIs Crieur sends through: End User Messaging SMS and SES v2 (the only module calling them).

Each failure is raised as a channel error: `TransientChannelError` when waiting helps (throttling, quotas,
an unreachable endpoint), `PermanentChannelError` otherwise, with a French message for the mairie and a
stable `code` (`opted_out` for a number that answered STOP, so the caller can unsubscribe it). Messages
and provider texts never carry a phone number or an e-mail address: AWS sometimes quotes them, so what
AWS says is scrubbed before it is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from crieur import aws
from crieur.channels.base import ChannelError, PermanentChannelError, TransientChannelError

if TYPE_CHECKING:
    from mypy_boto3_pinpoint_sms_voice_v2.client import PinpointSMSVoiceV2Client
    from mypy_boto3_sesv2.client import SESV2Client

MAX_BULK_DESTINATIONS = 50
"""SES SendBulkEmail takes at most 50 destinations per call."""

MAX_SENDER_ID_LENGTH = 11
ONE_CLICK = "List-Unsubscribe=One-Click"

_EMAIL = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")
_PHONE = re.compile(r"\+?\d[\d .\-]{4,}\d")


def scrub(text: str | None) -> str | None:
    """A provider's text without the addresses or numbers it may quote, kept short."""
    if text is None:
        return None
    return _PHONE.sub("[numéro masqué]", _EMAIL.sub("[adresse masquée]", text))[:500]


def _client_error(error: Exception) -> tuple[str, str, dict[str, Any], int | None] | None:
    """(AWS error code, message, the whole error body, HTTP status) of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    body = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    extra = {key: value for key, value in response.items() if key not in ("Error", "ResponseMetadata")}
    return str(body.get("Code", "")), str(body.get("Message", "")), {**body, **extra}, status


def _transport_error(error: Exception, provider: str) -> ChannelError | None:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, ReadTimeoutError

    if isinstance(error, ReadTimeoutError):
        return TransientChannelError("timeout", f"{provider} n'a pas répondu à temps : nouvel essai automatique.")
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return TransientChannelError("unreachable", f"{provider} est injoignable : nouvel essai automatique.")
    return None


# ------------------------------------------------------------------------------------------------- SMS

SMS_PROVIDER = "AWS End User Messaging SMS"


def _sms_error(error: Exception) -> ChannelError:  # noqa: PLR0911 - one answer per AWS error family
    transport = _transport_error(error, SMS_PROVIDER)
    if transport is not None:
        return transport
    parsed = _client_error(error)
    if parsed is None:
        raise error
    code, message, body, status = parsed
    said = scrub(f"{code}: {message}" + (f" ({body['Reason']})" if body.get("Reason") else ""))
    reason = str(body.get("Reason", ""))
    if code == "ThrottlingException":
        return TransientChannelError(
            "rate_limited", "Trop de SMS envoyés d'un coup : nouvel essai automatique.", said, http_status=status
        )
    if code == "ServiceQuotaExceededException":
        return TransientChannelError(
            "quota_exceeded",
            "Le quota d'envoi de SMS du compte est atteint (plafond de dépense ou limite journalière) : "
            "nouvel essai automatique, relevez le plafond si cela dure.",
            said,
            http_status=status,
        )
    if code == "InternalServerException" or (status is not None and status >= 500):
        return TransientChannelError(
            "provider_unavailable",
            f"{SMS_PROVIDER} est momentanément indisponible : nouvel essai automatique.",
            said,
            http_status=status,
        )
    if code == "ConflictException" and reason == "DESTINATION_PHONE_NUMBER_OPTED_OUT":
        return PermanentChannelError("opted_out", "Ce numéro a répondu STOP : il ne reçoit plus de SMS.", said, status)
    if code == "AccessDeniedException":
        return PermanentChannelError(
            "access_denied",
            "Le compte AWS n'a pas le droit d'envoyer des SMS (rôle ou envoi SMS non activé).",
            said,
            status,
        )
    if code == "ResourceNotFoundException":
        return PermanentChannelError(
            "sender_not_found",
            "L'identifiant d'expéditeur SMS n'existe pas dans le compte : enregistrez-le ou corrigez le réglage.",
            said,
            status,
        )
    if code == "ValidationException":
        return _sms_validation(reason, said, status)
    return PermanentChannelError("rejected", f"{SMS_PROVIDER} a refusé le SMS.", said, status)


def _sms_validation(reason: str, said: str | None, status: int | None) -> PermanentChannelError:
    if reason == "PRICE_OVER_THRESHOLD":
        return PermanentChannelError(
            "price_over_threshold", "Le prix du SMS dépasse le prix maximal réglé pour la commune.", said, status
        )
    if reason in ("SENDER_ID_NOT_REGISTERED", "SENDER_ID_NOT_SUPPORTED", "SENDER_ID_REQUIRES_REGISTRATION"):
        return PermanentChannelError(
            "sender_not_registered",
            "L'identifiant d'expéditeur SMS de la commune n'est pas enregistré pour ce pays.",
            said,
            status,
        )
    if reason in ("DESTINATION_COUNTRY_BLOCKED", "COUNTRY_NOT_ENABLED", "INTERNATIONAL_SENDING_NOT_SUPPORTED"):
        return PermanentChannelError(
            "destination_blocked", "L'envoi de SMS vers le pays de ce numéro n'est pas ouvert.", said, status
        )
    return PermanentChannelError(
        "invalid_request", "SMS refusé : numéro ou contenu invalide pour le service d'envoi.", said, status
    )


class SmsGateway:
    """SendTextMessage of AWS End User Messaging SMS (pinpoint-sms-voice-v2), one recipient per call."""

    def __init__(self, client: PinpointSMSVoiceV2Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> PinpointSMSVoiceV2Client:
        return self._client or aws.sms()

    def sender_id_exists(self, sender_id: str, country: str = "FR") -> bool:
        """Whether the account holds this alphanumeric sender id for the country (DescribeSenderIds)."""
        try:
            answer = self.client.describe_sender_ids(SenderIds=[{"SenderId": sender_id, "IsoCountryCode": country}])
        except self.client.exceptions.ResourceNotFoundException:
            return False
        except Exception as error:
            raise _sms_error(error) from None
        return any(str(item.get("SenderId", "")).upper() == sender_id.upper() for item in answer.get("SenderIds", []))

    def send_text(
        self,
        destination: str,
        body: str,
        *,
        sender_id: str,
        transactional: bool,
        max_price: str | None = None,
        ttl_seconds: int | None = None,
        context: Mapping[str, str] | None = None,
        configuration_set: str | None = None,
    ) -> str:
        """Sends one SMS to an E.164 number from the commune's sender id; answers the message id."""
        request: dict[str, Any] = {
            "DestinationPhoneNumber": destination,
            "OriginationIdentity": sender_id,
            "MessageBody": body,
            "MessageType": "TRANSACTIONAL" if transactional else "PROMOTIONAL",
        }
        if max_price is not None:
            request["MaxPrice"] = max_price
        if ttl_seconds is not None:
            request["TimeToLive"] = ttl_seconds
        if context:
            request["Context"] = dict(context)
        if configuration_set:
            request["ConfigurationSetName"] = configuration_set
        try:
            answer = self.client.send_text_message(**request)
        except Exception as error:
            raise _sms_error(error) from None
        return str(answer["MessageId"])


# ------------------------------------------------------------------------------------------------- e-mail

EMAIL_PROVIDER = "Amazon SES"

_SES_TRANSIENT = {
    "TooManyRequestsException": ("rate_limited", "Trop d'e-mails envoyés d'un coup : nouvel essai automatique."),
    "LimitExceededException": (
        "quota_exceeded",
        "Le quota d'envoi d'e-mails du compte est atteint : nouvel essai automatique.",
    ),
}
_SES_PERMANENT = {
    "MessageRejected": ("rejected", "Amazon SES a refusé l'e-mail (contenu ou destinataire refusé)."),
    "AccountSuspendedException": (
        "account_suspended",
        "L'envoi d'e-mails est suspendu sur le compte AWS : contactez l'administrateur de Crieur.",
    ),
    "SendingPausedException": (
        "sending_paused",
        "L'envoi d'e-mails est en pause sur le compte AWS : contactez l'administrateur de Crieur.",
    ),
    "MailFromDomainNotVerifiedException": (
        "sender_not_verified",
        "L'adresse d'expédition de la commune n'est pas vérifiée dans Amazon SES (domaine MAIL FROM).",
    ),
    "NotFoundException": ("not_found", "Modèle d'e-mail ou configuration introuvable dans Amazon SES."),
    "BadRequestException": ("invalid_request", "Amazon SES a refusé la demande (paramètre invalide)."),
}

_BULK_STATUSES: dict[str, tuple[Literal["transient", "permanent"], str, str]] = {
    "ACCOUNT_THROTTLED": ("transient", "rate_limited", _SES_TRANSIENT["TooManyRequestsException"][1]),
    "ACCOUNT_DAILY_QUOTA_EXCEEDED": ("transient", "quota_exceeded", _SES_TRANSIENT["LimitExceededException"][1]),
    "TRANSIENT_FAILURE": (
        "transient",
        "provider_unavailable",
        "Échec passager d'Amazon SES : nouvel essai automatique.",
    ),
    "FAILED": (
        "transient",
        "provider_unavailable",
        "Échec d'Amazon SES sans raison donnée : nouvel essai automatique.",
    ),
    "MESSAGE_REJECTED": ("permanent", "rejected", _SES_PERMANENT["MessageRejected"][1]),
    "INVALID_PARAMETER": ("permanent", "invalid_request", "Amazon SES a refusé ce destinataire (paramètre invalide)."),
    "MAIL_FROM_DOMAIN_NOT_VERIFIED": (
        "permanent",
        "sender_not_verified",
        _SES_PERMANENT["MailFromDomainNotVerifiedException"][1],
    ),
    "TEMPLATE_NOT_FOUND": ("permanent", "not_found", "Le modèle d'e-mail est introuvable dans Amazon SES."),
    "CONFIGURATION_SET_NOT_FOUND": ("permanent", "not_found", "Le jeu de configuration SES est introuvable."),
    "INVALID_SENDING_POOL_NAME": ("permanent", "not_found", "Le groupe d'adresses IP d'envoi SES est introuvable."),
    "ACCOUNT_SUSPENDED": ("permanent", "account_suspended", _SES_PERMANENT["AccountSuspendedException"][1]),
    "ACCOUNT_SENDING_PAUSED": ("permanent", "sending_paused", _SES_PERMANENT["SendingPausedException"][1]),
    "CONFIGURATION_SET_SENDING_PAUSED": (
        "permanent",
        "sending_paused",
        "L'envoi est en pause pour le jeu de configuration SES de la commune.",
    ),
}


def _ses_error(error: Exception) -> ChannelError:
    transport = _transport_error(error, EMAIL_PROVIDER)
    if transport is not None:
        return transport
    parsed = _client_error(error)
    if parsed is None:
        raise error
    code, message, _, status = parsed
    said = scrub(f"{code}: {message}")
    if code in _SES_TRANSIENT:
        short, french = _SES_TRANSIENT[code]
        return TransientChannelError(short, french, said, http_status=status)
    if status is not None and status >= 500:
        return TransientChannelError(
            "provider_unavailable",
            f"{EMAIL_PROVIDER} est momentanément indisponible : nouvel essai automatique.",
            said,
            http_status=status,
        )
    short, french = _SES_PERMANENT.get(code, ("rejected", f"{EMAIL_PROVIDER} a refusé l'e-mail."))
    return PermanentChannelError(short, french, said, status)


def unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe: the mail client POSTs `List-Unsubscribe=One-Click` to the URL."""
    return {"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": ONE_CLICK}


def _headers(headers: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in (headers or {}).items()]


class BulkDestination(BaseModel):
    """One recipient of a bulk send: `key` is the caller's opaque id (a subscriber id), echoed in the result."""

    key: str
    address: str = Field(repr=False)
    template_data: dict[str, Any] = {}
    headers: dict[str, str] = Field(default={}, repr=False)
    """Per-recipient headers (List-Unsubscribe with the recipient's own link)."""


class BulkResult(BaseModel):
    """What SES said for one destination, in the order of the destinations."""

    key: str
    status: Literal["sent", "transient", "permanent"]
    message_id: str | None = None
    code: str | None = None
    message: str | None = None
    provider_message: str | None = None


class EmailGateway:
    """SES v2: templates, bulk sending (≤ 50 destinations a call), and single e-mails (confirmations)."""

    def __init__(self, client: SESV2Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SESV2Client:
        return self._client or aws.sesv2()

    def ensure_template(self, name: str, subject: str, html: str, text: str) -> None:
        """Creates the template, or updates it when it exists (the content is whatever is given now)."""
        content: Any = {"Subject": subject, "Html": html, "Text": text}
        try:
            try:
                self.client.update_email_template(TemplateName=name, TemplateContent=content)
            except self.client.exceptions.NotFoundException:
                try:
                    self.client.create_email_template(TemplateName=name, TemplateContent=content)
                except self.client.exceptions.AlreadyExistsException:  # created meanwhile by another send
                    self.client.update_email_template(TemplateName=name, TemplateContent=content)
        except Exception as error:
            raise _ses_error(error) from None

    def send_bulk(
        self,
        from_address: str,
        reply_to: str | None,
        template_name: str,
        template_data_default: Mapping[str, Any],
        destinations: Iterable[BulkDestination],
        *,
        headers: Mapping[str, str] | None = None,
        configuration_set: str | None = None,
    ) -> list[BulkResult]:
        """One SendBulkEmail call; a call-level failure is raised, per-recipient failures are results."""
        entries = list(destinations)
        if not entries:
            return []
        if len(entries) > MAX_BULK_DESTINATIONS:
            raise ValueError(f"SendBulkEmail takes at most {MAX_BULK_DESTINATIONS} destinations, not {len(entries)}")
        template: dict[str, Any] = {"TemplateName": template_name, "TemplateData": json.dumps(template_data_default)}
        if headers:
            template["Headers"] = _headers(headers)
        request: dict[str, Any] = {
            "FromEmailAddress": from_address,
            "DefaultContent": {"Template": template},
            "BulkEmailEntries": [self._entry(entry) for entry in entries],
        }
        if reply_to:
            request["ReplyToAddresses"] = [reply_to]
        if configuration_set:
            request["ConfigurationSetName"] = configuration_set
        try:
            answer = self.client.send_bulk_email(**request)
        except Exception as error:
            raise _ses_error(error) from None
        results = answer["BulkEmailEntryResults"]
        if len(results) != len(entries):
            raise TransientChannelError(
                "provider_unavailable", "Amazon SES a répondu pour un autre nombre de destinataires : nouvel essai."
            )
        return [self._result(entry.key, dict(result)) for entry, result in zip(entries, results, strict=True)]

    @staticmethod
    def _entry(destination: BulkDestination) -> dict[str, Any]:
        entry: dict[str, Any] = {"Destination": {"ToAddresses": [destination.address]}}
        if destination.template_data:
            entry["ReplacementEmailContent"] = {
                "ReplacementTemplate": {"ReplacementTemplateData": json.dumps(destination.template_data)}
            }
        if destination.headers:
            entry["ReplacementHeaders"] = _headers(destination.headers)
        return entry

    @staticmethod
    def _result(key: str, result: dict[str, Any]) -> BulkResult:
        status = str(result.get("Status", "FAILED"))
        if status == "SUCCESS":
            return BulkResult(key=key, status="sent", message_id=result.get("MessageId"))
        kind, code, message = _BULK_STATUSES.get(status, _BULK_STATUSES["FAILED"])
        said = scrub(f"{status}: {result['Error']}" if result.get("Error") else status)
        return BulkResult(key=key, status=kind, code=code, message=message, provider_message=said)

    def sender_verified(self, address: str) -> bool:
        """Whether SES lets the account send from `address`: the address itself, or its domain, is verified."""
        for identity in (address, address.rpartition("@")[2]):
            try:
                answer = self.client.get_email_identity(EmailIdentity=identity)
            except self.client.exceptions.NotFoundException:
                continue
            except Exception as error:
                raise _ses_error(error) from None
            if answer.get("VerifiedForSendingStatus"):
                return True
        return False

    def send_one(
        self,
        from_address: str,
        to_address: str,
        subject: str,
        text: str,
        html: str | None = None,
        *,
        reply_to: str | None = None,
        unsubscribe_url: str | None = None,
        configuration_set: str | None = None,
    ) -> str:
        """One simple e-mail (a confirmation link); with `unsubscribe_url`, the RFC 8058 headers. Answers its id."""
        body: dict[str, Any] = {"Text": {"Data": text, "Charset": "UTF-8"}}
        if html is not None:
            body["Html"] = {"Data": html, "Charset": "UTF-8"}
        message: dict[str, Any] = {"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": body}
        if unsubscribe_url:
            message["Headers"] = _headers(unsubscribe_headers(unsubscribe_url))
        request: dict[str, Any] = {
            "FromEmailAddress": from_address,
            "Destination": {"ToAddresses": [to_address]},
            "Content": {"Simple": message},
        }
        if reply_to:
            request["ReplyToAddresses"] = [reply_to]
        if configuration_set:
            request["ConfigurationSetName"] = configuration_set
        try:
            answer = self.client.send_email(**request)
        except Exception as error:
            raise _ses_error(error) from None
        return str(answer["MessageId"])
