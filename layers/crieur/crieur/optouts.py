"""What the providers tell Crieur about its recipients afterwards, turned into unsubscriptions.

- Amazon SES, through the configuration set's event destination (an SNS topic): a permanent bounce (the
  address does not exist) or a complaint (the citizen marked the e-mail as spam) unsubscribes the address
  everywhere it is subscribed. Transient bounces (a full mailbox) change nothing. Both the event-publishing
  shape (`eventType`) and the identity-notification shape (`notificationType`) are read.
- AWS End User Messaging SMS two-way messaging (an SNS topic on the phone number or pool that receives
  replies): a reply whose keyword is an opt-out word (STOP, ARRET…) unsubscribes the number. End User
  Messaging also puts the number on the account's opt-out list, so a later send is refused
  (`opted_out`), which the SMS channel turns into the same unsubscription.

Addresses and numbers are personal data: they are passed to `Subscribers.remove_address` and never logged.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from crieur.subscribers import Subscribers

OPT_OUT_KEYWORDS = frozenset({"STOP", "ARRET", "ARRETER", "DESABONNER", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END"})
"""Reply keywords that mean "no more SMS" (French operators' ARRET and STOP, and AWS's default keywords)."""

Reason = Literal["bounce", "complaint", "stop"]


@dataclass(frozen=True)
class Removal:
    medium: Literal["sms", "email"]
    address: str
    reason: Reason


def _json(message: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(message)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def ses_removals(message: str) -> list[Removal]:
    """The addresses an SES event notification (the SNS message text) says to stop writing to."""
    event = _json(message)
    if event is None:
        return []
    kind = str(event.get("eventType") or event.get("notificationType") or "")
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return []
        listed, reason = bounce.get("bouncedRecipients") or [], "bounce"
    elif kind == "Complaint":
        listed, reason = (event.get("complaint") or {}).get("complainedRecipients") or [], "complaint"
    else:
        return []
    return [
        Removal("email", str(recipient["emailAddress"]), reason)  # type: ignore[arg-type]
        for recipient in listed
        if isinstance(recipient, dict) and recipient.get("emailAddress")
    ]


def _keyword(text: str) -> str:
    """`Arrêt.` → `ARRET`: the first word, without accents nor punctuation, in capitals."""
    words = text.strip().split()
    first = words[0] if words else ""
    plain = unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode()
    return "".join(char for char in plain if char.isalnum()).upper()


def sms_removals(message: str) -> list[Removal]:
    """The number an inbound SMS (the SNS message text of two-way messaging) asks to unsubscribe, if any."""
    inbound = _json(message)
    if inbound is None:
        return []
    number = inbound.get("originationNumber")
    if not isinstance(number, str) or not number.startswith("+"):
        return []
    keywords = {_keyword(str(inbound.get(key) or "")) for key in ("messageKeyword", "messageBody")}
    if not keywords & OPT_OUT_KEYWORDS:
        return []
    return [Removal("sms", number, "stop")]


def removals_in(message: str) -> list[Removal]:
    """What one SNS message asks, whichever topic it came from (an SES event, or a reply to an SMS)."""
    return ses_removals(message) or sms_removals(message)


def apply(subscribers: Subscribers, removals: list[Removal]) -> int:
    """Unsubscribes each address; answers how many subscriptions were removed."""
    return sum(subscribers.remove_address(item.medium, item.address, item.reason) for item in removals)
