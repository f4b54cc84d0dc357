"""Weather vigilance: Météo-France and MeteoAlarm readers, one model, the diff and the French texts.

Pure library: the poller (functions/weather) fetches with MeteoFranceSource, falls back to MeteoAlarmSource,
diffs against the stored state and publishes `templates.render(event)` for each commune that opted in.
Imports stay light: nothing here creates a client or reads a parameter at import time.
"""

from crieur.weather.diff import DiffResult, EventKind, StoredAlert, VigilanceEvent, alert_key, diff, expire
from crieur.weather.errors import (
    SourceAuthError,
    SourceNotConfigured,
    SourceUnavailable,
    VigilanceDocumentError,
    WeatherSourceError,
)
from crieur.weather.model import (
    Color,
    DocumentIdentity,
    Interval,
    Outlook,
    Phenomenon,
    Source,
    Vigilance,
    VigilanceSnapshot,
)

__all__ = [
    "Color",
    "DiffResult",
    "DocumentIdentity",
    "EventKind",
    "Interval",
    "Outlook",
    "Phenomenon",
    "Source",
    "SourceAuthError",
    "SourceNotConfigured",
    "SourceUnavailable",
    "StoredAlert",
    "Vigilance",
    "VigilanceDocumentError",
    "VigilanceEvent",
    "VigilanceSnapshot",
    "WeatherSourceError",
    "alert_key",
    "diff",
    "expire",
]
