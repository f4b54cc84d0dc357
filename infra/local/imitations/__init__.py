"""Provider imitations plugged into the channel sandbox, one module per provider (see sandbox.Imitation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.local.imitations.bluesky import BlueskyImitation
from infra.local.imitations.email import EmailImitation
from infra.local.imitations.facebook import FacebookImitation
from infra.local.imitations.instagram import InstagramImitation
from infra.local.imitations.meteoalarm import MeteoAlarmImitation
from infra.local.imitations.meteofrance import MeteoFranceImitation
from infra.local.imitations.push import PushImitation
from infra.local.imitations.sms import SmsImitation
from infra.local.imitations.webpush import WebpushImitation
from infra.local.imitations.wordpress import WordpressImitation
from infra.local.imitations.x import XImitation

if TYPE_CHECKING:
    from infra.local.sandbox import Imitation

IMITATIONS: list[type[Imitation]] = [
    FacebookImitation,
    InstagramImitation,
    XImitation,
    BlueskyImitation,
    WordpressImitation,
    PushImitation,
    WebpushImitation,
    SmsImitation,
    EmailImitation,
    MeteoFranceImitation,
    MeteoAlarmImitation,
]
