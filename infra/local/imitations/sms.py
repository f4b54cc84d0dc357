"""AWS End User Messaging SMS (pinpoint-sms-voice-v2) as the sandbox imitates it; moto has no such service.

Wire protocol as botocore speaks it: JSON 1.0, `POST /` with `X-Amz-Target: PinpointSMSVoiceV2.<Operation>`,
`Content-Type: application/x-amz-json-1.0`, a SigV4 `Authorization` for the `sms-voice` service (its
presence and scope are checked, not the signature). Only `SendTextMessage` is served:
`DestinationPhoneNumber` E.164, `OriginationIdentity` an alphanumeric sender id of 1-11 characters (with a
letter) or an E.164 number, `MessageBody` 1-1600 characters, `MessageType` TRANSACTIONAL|PROMOTIONAL,
`MaxPrice` per part in US dollars (a message whose part costs more is refused with PRICE_OVER_THRESHOLD),
`TimeToLive` 5-259200 seconds, `Context` at most 5 entries → `{"MessageId"}`.

Errors are AWS-shaped: HTTP status, `x-amzn-ErrorType` header and a body `{"__type", "Message", "Reason", ...}`:
ValidationException (400), AccessDeniedException (403), ResourceNotFoundException (404), ConflictException
(409, Reason DESTINATION_PHONE_NUMBER_OPTED_OUT for a number that answered STOP: see `reply`),
ServiceQuotaExceededException (402), ThrottlingException (429), InternalServerException (500).
Faults (`inject_fault("sms", status)`) answer the exception their status stands for.

Control: `POST /sms/_reply {"from": "+33…", "body": "STOP"}` is a citizen's answer to the sender; STOP
(and ARRET, as French operators take it) puts the number on the opt-out list.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from crieur.render.sms import encoding_of, sms_length, split_parts
from infra.local.sandbox import Fault, Reply, Request, Sandbox

TARGET_PREFIX = "PinpointSMSVoiceV2."
SIGNING_SCOPE = "/sms-voice/aws4_request"
DEMO_SENDER_ID = "MAIRIE"
E164 = re.compile(r"\+[1-9]\d{1,14}")
SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 \-]{1,11}")
MAX_PRICE = re.compile(r"[0-9]{0,2}\.[0-9]{1,5}")
MAX_BODY = 1600
MIN_TTL, MAX_TTL = 5, 259200
MAX_CONTEXT = 5
OPT_OUT_WORDS = frozenset({"STOP", "ARRET", "ARRÊT", "STOP SMS"})
PRICE_PER_PART = {"+33": 0.075}
"""US dollars per part (reference/channels.md: roughly 0.07-0.09 to France); elsewhere `OTHER_PRICE`."""
OTHER_PRICE = 0.10

FAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("ValidationException", "1 validation error detected", "INVALID_PARAMETER"),
    402: (
        "ServiceQuotaExceededException",
        "You have exceeded your monthly spend limit for text messages.",
        "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
    ),
    403: ("AccessDeniedException", "User is not authorized to perform: sms-voice:SendTextMessage", None),
    404: ("ResourceNotFoundException", "The origination identity was not found.", None),
    409: ("ConflictException", "The destination phone number is opted out.", "DESTINATION_PHONE_NUMBER_OPTED_OUT"),
    429: ("ThrottlingException", "Rate exceeded", None),
    500: ("InternalServerException", "An internal error occurred.", None),
}


def aws_error(status: int, kind: str, message: str, **fields: Any) -> Reply:
    """An AWS JSON-protocol error: botocore reads the code from `__type` (or the header), the rest as fields."""
    body = {"__type": kind, "Message": message, **{key: value for key, value in fields.items() if value is not None}}
    return Reply.json(status, body, {"x-amzn-ErrorType": kind, "x-amzn-RequestId": str(uuid.uuid4())})


def _validation(message: str, reason: str = "INVALID_PARAMETER", field: str | None = None) -> Reply:
    fields = [{"Name": field, "Message": message}] if field else None
    return aws_error(400, "ValidationException", message, Reason=reason, Fields=fields)


@dataclass
class _Sms:
    message_id: str
    destination: str
    sender: str
    body: str
    message_type: str
    context: dict[str, str]
    at: float


class SmsImitation:
    """SendTextMessage of End User Messaging SMS, with an opt-out list (see the module docstring)."""

    channel: ClassVar[str] = "sms"
    prefix: ClassVar[str] = "/sms"
    base_url_variable: ClassVar[str | None] = "CRIEUR_SMS_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.RLock()
        self._messages: list[_Sms] = []
        self._opted_out: set[str] = set()

    # -- demo and control ------------------------------------------------------------------------------------

    def demo_channel(self) -> dict[str, Any] | None:
        """The demo commune's sms channel, once Crieur serves it (crieur.channels.ADAPTERS)."""
        from crieur.channels import ADAPTERS

        return {"enabled": True, "settings": {"sender_id": DEMO_SENDER_ID}} if "sms" in ADAPTERS else None

    def reply(self, number: str, body: str) -> None:
        """A citizen answers the sender: STOP puts the number on the account's opt-out list."""
        if body.strip().upper() in OPT_OUT_WORDS:
            with self._lock:
                self._opted_out.add(number)

    def opted_out(self) -> set[str]:
        with self._lock:
            return set(self._opted_out)

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(item)) for item in self._messages]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._opted_out.clear()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:  # noqa: PLR0911 - one answer per protocol check
        if subpath == "/_reply" and request.method == "POST":
            try:
                spoken = json.loads(request.body or b"{}")
                self.reply(str(spoken["from"]), str(spoken["body"]))
            except (ValueError, KeyError, TypeError) as bad:
                return Reply.json(400, {"error": f"attendu : {{from, body}} ({bad})"})
            return Reply(204)
        if subpath not in ("", "/") or request.method != "POST":
            return aws_error(404, "UnknownOperationException", "Not found")
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or SIGNING_SCOPE not in authorization:
            return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        target = request.headers.get("x-amz-target", "")
        if target not in (f"{TARGET_PREFIX}SendTextMessage", f"{TARGET_PREFIX}DescribeSenderIds"):
            return aws_error(400, "UnknownOperationException", f"Operation {target or '(none)'} is not supported")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return aws_error(400, "SerializationException", "Start of structure or map found where not expected.")
        if not isinstance(body, dict):
            return aws_error(400, "SerializationException", "Start of structure or map found where not expected.")
        if target.endswith(".DescribeSenderIds"):
            return self._describe_sender_ids(body)
        return self._send_text(request, body)

    def _describe_sender_ids(self, body: dict[str, Any]) -> Reply:
        """The demo sender id exists for France; any other is ResourceNotFoundException, as in a fresh account."""
        asked = body.get("SenderIds") or []
        if not isinstance(asked, list) or not all(isinstance(item, dict) for item in asked):
            return _validation("SenderIds must be a list of {SenderId, IsoCountryCode}", field="SenderIds")
        found = []
        for item in asked:
            sender, country = str(item.get("SenderId", "")), str(item.get("IsoCountryCode", ""))
            if sender.upper() != DEMO_SENDER_ID or country != "FR":
                return aws_error(
                    404,
                    "ResourceNotFoundException",
                    f"Sender id {sender} does not exist for {country}.",
                    ResourceType="sender-id",
                    ResourceId=sender,
                )
            found.append(
                {
                    "SenderIdArn": f"arn:aws:sms-voice:eu-west-3:123456789012:sender-id/{DEMO_SENDER_ID}/FR",
                    "SenderId": DEMO_SENDER_ID,
                    "IsoCountryCode": "FR",
                    "MessageTypes": ["TRANSACTIONAL", "PROMOTIONAL"],
                    "MonthlyLeasingPrice": "0.00",
                    "DeletionProtectionEnabled": False,
                    "Registered": True,
                }
            )
        return Reply.json(200, {"SenderIds": found})

    def _send_text(self, request: Request, body: dict[str, Any]) -> Reply:
        problem = self._problem(body)
        if problem is not None:
            self.sandbox.record(self.channel, request, problem, body)
            return problem
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        if fault is not None and fault.status is not None:
            reply = self._fault_reply(fault)
            self.sandbox.record(self.channel, request, reply, body)
            return reply
        destination = str(body["DestinationPhoneNumber"])
        with self._lock:
            opted_out = destination in self._opted_out
        if opted_out:
            reply = aws_error(
                409,
                "ConflictException",
                "The destination phone number is opted out.",
                Reason="DESTINATION_PHONE_NUMBER_OPTED_OUT",
                ResourceType="opt-out-list",
                ResourceId="Default",
            )
            self.sandbox.record(self.channel, request, reply, body)
            return reply
        message_id = str(uuid.uuid4())
        sms = _Sms(
            message_id,
            destination,
            str(body["OriginationIdentity"]),
            str(body["MessageBody"]),
            str(body.get("MessageType", "TRANSACTIONAL")),
            dict(body.get("Context") or {}),
            request.at,
        )
        with self._lock:
            self._messages.append(sms)
        reply = Reply.json(200, {"MessageId": message_id}, {"x-amzn-RequestId": str(uuid.uuid4())})
        self.sandbox.record(self.channel, request, reply, body, external_id=message_id)
        return reply

    @staticmethod
    def _problem(body: dict[str, Any]) -> Reply | None:  # noqa: PLR0911 - one answer per documented rule
        destination = body.get("DestinationPhoneNumber")
        if not isinstance(destination, str) or not E164.fullmatch(destination):
            return _validation(
                "Value at 'destinationPhoneNumber' failed to satisfy constraint: Member must satisfy regular "
                "expression pattern: \\+?[1-9][0-9]{1,18}",
                field="DestinationPhoneNumber",
            )
        sender = body.get("OriginationIdentity")
        if not isinstance(sender, str) or not (SENDER_ID.fullmatch(sender) or E164.fullmatch(sender)):
            return _validation(
                "The origination identity must be a registered sender id of 1 to 11 letters and digits.",
                reason="SENDER_ID_NOT_SUPPORTED",
                field="OriginationIdentity",
            )
        text = body.get("MessageBody")
        if not isinstance(text, str) or not text or len(text) > MAX_BODY:
            return _validation(
                "Value at 'messageBody' failed to satisfy constraint: "
                f"Member must have length between 1 and {MAX_BODY}",
                field="MessageBody",
            )
        if body.get("MessageType", "TRANSACTIONAL") not in ("TRANSACTIONAL", "PROMOTIONAL"):
            return _validation("Value at 'messageType' must be TRANSACTIONAL or PROMOTIONAL", field="MessageType")
        ttl = body.get("TimeToLive")
        if ttl is not None and (not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL):
            return _validation(f"TimeToLive must be between {MIN_TTL} and {MAX_TTL}", field="TimeToLive")
        context = body.get("Context") or {}
        if not isinstance(context, dict) or len(context) > MAX_CONTEXT:
            return _validation(f"Context may have at most {MAX_CONTEXT} entries", field="Context")
        max_price = body.get("MaxPrice")
        if max_price is not None:
            if not isinstance(max_price, str) or not MAX_PRICE.fullmatch(max_price):
                return _validation("MaxPrice must look like 0.10", field="MaxPrice")
            if part_price(destination) > float(max_price):
                return _validation(
                    "The price of the message exceeds the MaxPrice you specified.", reason="PRICE_OVER_THRESHOLD"
                )
        return None

    @staticmethod
    def _fault_reply(fault: Fault) -> Reply:
        status = fault.status or 500
        kind, message, reason = FAULT_ERRORS.get(status, FAULT_ERRORS[500 if status >= 500 else 400])
        reply = aws_error(status, kind, message, Reason=reason)
        if fault.retry_after is not None:
            reply.headers["Retry-After"] = str(fault.retry_after)
        return reply

    # -- the page --------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        """Each SMS as a phone shows it: one bubble from the sender id, and the parts the operator billed."""
        with self._lock:
            shown = list(reversed(self._messages))
            opted_out = sorted(self._opted_out)
        cards = "".join(_card(item) for item in shown) or "<p>Aucun SMS envoyé.</p>"
        stops = (
            f"<p>Numéros ayant répondu STOP : {', '.join(f'<code>{html.escape(n)}</code>' for n in opted_out)}</p>"
            if opted_out
            else ""
        )
        return (
            '<section aria-labelledby="h-sms"><h2 id="h-sms">SMS</h2>'
            f"<p>{len(shown)} SMS envoyé(s).</p>{stops}{cards}</section>"
        )


def part_price(destination: str) -> float:
    return next((price for prefix, price in PRICE_PER_PART.items() if destination.startswith(prefix)), OTHER_PRICE)


def _part_length(part: str, encoding: str) -> str:
    """A part's size in the encoding of the whole message (a part of a UCS-2 message may hold only ASCII)."""
    if encoding == "GSM-7":
        return f"{sms_length(part)} septets"
    return f"{len(part.encode('utf-16-le')) // 2} unités UTF-16"


def _card(item: _Sms) -> str:
    parts = split_parts(item.body)
    encoding = encoding_of(item.body)
    listed = "".join(
        f"<li>Partie {index}/{len(parts)} ({_part_length(part, encoding)}) : <q>{html.escape(part)}</q></li>"
        for index, part in enumerate(parts, 1)
    )
    moment = time.strftime("%H:%M", time.localtime(item.at))
    kind = "alerte" if item.message_type == "TRANSACTIONAL" else "information"
    return (
        '<article style="max-width:24rem;margin:1rem 0;border:1px solid #767676;border-radius:1rem;padding:.5rem 1rem">'
        f'<h3 style="margin:.2rem 0">{html.escape(item.sender)}</h3>'
        f"<p><small>À <code>{html.escape(item.destination)}</code> · {moment} · {kind}</small></p>"
        '<p style="background:#e9e9eb;border-radius:1rem;padding:.5rem .8rem;white-space:pre-wrap">'
        f"{html.escape(item.body)}</p>"
        f"<details><summary>{len(parts)} partie(s) facturée(s), {encoding}</summary><ol>{listed}</ol></details>"
        f"<p><small><code>{html.escape(item.message_id)}</code></small></p></article>"
    )
