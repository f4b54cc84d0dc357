"""Météo-France DPVigilance: the `cartevigilance/encours` reader and its HTTP client.

Shapes (reference/weather.md and fixtures/weather/SOURCES.md):
- `cartevigilance/encours` (type_cdp `cdp_carte_externe`): colours per département × phenomenon for the J and
  J1 periods. The live API wraps it as {"product": {...}, "meta": {"snapshot_id", ...}}; the bare product is
  accepted too. This is what decisions are made on.
- `textesvigilance/encours` (type_cdp `cdp_textes`): the bulletins' texts. Its `risk_code` is the bulletin's
  level, not a département's current colour, so it never becomes a snapshot: `parse_bulletin` reads it apart.
- The mobile-app API `warning/full?domain=…` (same ids, epoch times, one domain per document): read by
  `parse_warning_full` for tests and tools; its snapshot only covers what it lists.

A document that is not valid JSON, misses a required field, has a time without an offset or a national carte
that lacks départements raises VigilanceDocumentError: it is refused whole, never read in part.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from crieur.weather.departments import METROPOLITAN_DEPARTEMENTS
from crieur.weather.errors import (
    SourceAuthError,
    SourceNotConfigured,
    SourceUnavailable,
    VigilanceDocumentError,
    WeatherSourceError,
)
from crieur.weather.model import (
    Color,
    Departement,
    DocumentIdentity,
    Interval,
    Phenomenon,
    Source,
    UtcDatetime,
    Vigilance,
    VigilanceSnapshot,
    _Frozen,
    combine,
)

logger = logging.getLogger(__name__)

SOURCE_NAME: Final = "Météo-France"
DEFAULT_BASE_URL: Final = "https://public-api.meteofrance.fr"
"""The real host; CRIEUR_METEOFRANCE_BASE_URL overrides it (the local sandbox, any server speaking the API)."""
API_PREFIX: Final = "/public/DPVigilance/v1"
CARTE_PATH: Final = f"{API_PREFIX}/cartevigilance/encours"
TEXTES_PATH: Final = f"{API_PREFIX}/textesvigilance/encours"
DEFAULT_OAUTH_ENDPOINT: Final = "https://portail-api.meteofrance.fr/token"
TOKEN_LIFETIME_S: Final = 3600
"""What the portal grants (reference/weather.md); used when the token answer has no `expires_in`."""
TOKEN_MARGIN: Final = timedelta(seconds=60)
"""A cached token is renewed this long before it expires, so that it does not expire in flight."""
MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
ANDORRE: Final = "99"
COASTAL_SUFFIX: Final = "10"


# -- configuration ---------------------------------------------------------------------------------------------


def base_url_from_env() -> str:
    """CRIEUR_METEOFRANCE_BASE_URL, else the real host. A value ending in /public/DPVigilance/v1 is fine too."""
    value = os.environ.get("CRIEUR_METEOFRANCE_BASE_URL") or DEFAULT_BASE_URL
    return _host_part(value)


def _host_part(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base.removesuffix(API_PREFIX)


def token_url_for(base_url: str) -> str:
    """The real token endpoint for the real host; `<base>/token` for any other base (the sandbox serves both)."""
    host = _host_part(base_url)
    return DEFAULT_OAUTH_ENDPOINT if host == DEFAULT_BASE_URL else f"{host}/token"


# -- raw documents (Météo-France's data: unknown fields ignored) -------------------------------------------------


def _raw_id(value: object) -> str | None:
    """Ids arrive as "6" or 6 (and colour ids may be 0, -1 or missing): kept as text, decided later."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise ValueError("identifiant attendu (nombre ou texte)")


def _domain_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("domain_id attendu (texte)")
    return str(value).strip()


RawId = Annotated[str | None, BeforeValidator(_raw_id)]
DomainId = Annotated[str, BeforeValidator(_domain_text)]


class _Raw(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _CarteTimelapsItem(_Raw):
    begin_time: AwareDatetime
    end_time: AwareDatetime
    color_id: RawId = None


class _CartePhenomenon(_Raw):
    phenomenon_id: RawId
    phenomenon_max_color_id: RawId = None
    timelaps_items: list[_CarteTimelapsItem] = []


class _CarteDomain(_Raw):
    domain_id: DomainId
    max_color_id: RawId = None
    phenomenon_items: list[_CartePhenomenon]


class _CarteTimelaps(_Raw):
    domain_ids: list[_CarteDomain]


class _CartePeriod(_Raw):
    echeance: str
    begin_validity_time: AwareDatetime
    end_validity_time: AwareDatetime
    timelaps: _CarteTimelaps


class _CarteProduct(_Raw):
    type_cdp: str | None = None
    update_time: AwareDatetime
    domain_id: str | None = None
    periods: list[_CartePeriod] = Field(min_length=1)


class _Meta(_Raw):
    snapshot_id: RawId = None
    product_datetime: AwareDatetime | None = None
    generation_timestamp: AwareDatetime | None = None


class _MobileItem(_Raw):
    begin_time: int | float
    color_id: RawId = None


class _MobileTimelaps(_Raw):
    phenomenon_id: RawId
    timelaps_items: list[_MobileItem] = Field(min_length=1)


class _MobileWarning(_Raw):
    update_time: int | float
    end_validity_time: int | float
    domain_id: DomainId
    timelaps: list[_MobileTimelaps]


class _Subdivision(_Raw):
    underline_text: str | None = None
    bold_text: str | None = None
    text: list[str] = []


class _Term(_Raw):
    term_names: str
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    risk_code: RawId = None
    subdivision_text: list[_Subdivision] = []


class _TextItem(_Raw):
    type_code: str | None = None
    hazard_code: RawId = None
    hazard_name: str | None = None
    term_items: list[_Term] = []


class _BlocItem(_Raw):
    id: str
    type_group: str | None = None
    text_items: list[_TextItem] = []


class _TextBloc(_Raw):
    domain_id: DomainId
    domain_name: str | None = None
    bloc_id: str | None = None
    bloc_items: list[_BlocItem] = []


class _TextesProduct(_Raw):
    type_cdp: str | None = None
    update_time: AwareDatetime
    text_bloc_items: list[_TextBloc] = Field(min_length=1)


_M = TypeVar("_M", bound=BaseModel)


def _refuse(product: str, message: str) -> VigilanceDocumentError:
    return VigilanceDocumentError(SOURCE_NAME, f"{product} : {message}")


def _validate(model: type[_M], data: object, product: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(racine)"
        raise _refuse(
            product,
            f"document malformé ou tronqué ({invalid.error_count()} erreur(s), d'abord {where} : {first['msg']})",
        ) from invalid


def load_json(payload: bytes | str | Mapping[str, Any], product: str) -> dict[str, Any]:
    """The document as a JSON object; a truncated or non-JSON body is refused with a clear error."""
    if isinstance(payload, Mapping):
        return dict(payload)
    if len(payload) > MAX_DOCUMENT_BYTES:
        raise _refuse(product, f"document trop volumineux ({len(payload)} octets)")
    if not payload or not payload.strip():
        raise _refuse(product, "document vide")
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as broken:
        raise _refuse(product, f"JSON illisible ou tronqué ({broken})") from broken
    if not isinstance(document, dict):
        raise _refuse(product, "un objet JSON est attendu")
    return document


def _unwrap(document: dict[str, Any], product: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """{"product": …, "meta": …} as the live API answers, or the bare product (as in the textes sample)."""
    if "product" in document:
        inner, meta = document["product"], document.get("meta")
        if not isinstance(inner, dict):
            raise _refuse(product, "« product » doit être un objet")
        if meta is not None and not isinstance(meta, dict):
            raise _refuse(product, "« meta » doit être un objet")
        return inner, meta
    if "code" in document and "message" in document:
        raise _refuse(product, f"réponse d'erreur de l'API : {document.get('code')} {document.get('message')}")
    return document, None


def _departement_of_domain(domain_id: str) -> tuple[str | None, bool]:
    """'13' → ('13', False); coastal '1310' → ('13', True); '2A10' → ('2A', True); anything else → (None, …)."""
    if domain_id in METROPOLITAN_DEPARTEMENTS:
        return domain_id, False
    if len(domain_id) == 4 and domain_id.endswith(COASTAL_SUFFIX) and domain_id[:2] in METROPOLITAN_DEPARTEMENTS:
        return domain_id[:2], True
    return None, False


# -- readers -----------------------------------------------------------------------------------------------------


def parse_carte(payload: bytes | str | Mapping[str, Any], *, etag: str | None = None) -> VigilanceSnapshot:
    """`cartevigilance/encours` → snapshot. National cartes must list all 96 metropolitan départements in J."""
    product_name = "cartevigilance"
    document = load_json(payload, product_name)
    inner, meta_data = _unwrap(document, product_name)
    type_cdp = inner.get("type_cdp")
    if "text_bloc_items" in inner or type_cdp == "cdp_textes":
        raise _refuse(
            product_name, "c'est le bulletin (textesvigilance), pas la carte : les couleurs viennent de la carte"
        )
    if type_cdp not in (None, "cdp_carte_externe"):
        raise _refuse(product_name, f"type de produit inattendu : {type_cdp!r}")
    product = _validate(_CarteProduct, inner, product_name)
    meta = _validate(_Meta, meta_data, product_name) if meta_data is not None else None

    vigilances, warnings, in_j = _read_periods(product, product_name)
    if product.domain_id in (None, "FRA"):
        missing = METROPOLITAN_DEPARTEMENTS - in_j
        if missing:
            shown = ", ".join(sorted(missing)[:10])
            raise _refuse(
                product_name,
                f"carte nationale incomplète : {len(missing)} département(s) absent(s) de la période J ({shown}…)",
            )
    identity = DocumentIdentity(
        source=Source.METEOFRANCE,
        product=product_name,
        update_time=product.update_time,
        snapshot_id=meta.snapshot_id if meta else None,
        etag=etag,
    )
    return VigilanceSnapshot(identity=identity, vigilances=combine(vigilances), warnings=tuple(warnings))


def _read_periods(product: _CarteProduct, product_name: str) -> tuple[list[Vigilance], list[str], set[str]]:
    """Every (département, phenomenon) of every period; the départements present in J."""
    vigilances: list[Vigilance] = []
    warnings: list[str] = []
    in_j: set[str] = set()
    try:
        for period in product.periods:
            if period.end_validity_time <= period.begin_validity_time:
                raise _refuse(product_name, f"période {period.echeance} vide ou inversée")
            if not period.timelaps.domain_ids:
                raise _refuse(product_name, f"période {period.echeance} sans aucun domaine : document tronqué")
            for domain in period.timelaps.domain_ids:
                departement, _coastal = _departement_of_domain(domain.domain_id)
                if departement is None:
                    if domain.domain_id != ANDORRE:
                        warnings.append(f"domaine inconnu {domain.domain_id!r} ignoré")
                    continue
                if period.echeance == "J":
                    in_j.add(departement)
                vigilances.extend(
                    _carte_vigilance(departement, item, period, warnings) for item in domain.phenomenon_items
                )
    except ValidationError as invalid:
        raise _refuse(product_name, f"valeurs incohérentes : {invalid.errors()[0]['msg']}") from invalid
    return vigilances, warnings, in_j


def _carte_vigilance(departement: str, item: _CartePhenomenon, period: _CartePeriod, warnings: list[str]) -> Vigilance:
    phenomenon = Phenomenon.from_meteofrance_id(item.phenomenon_id)
    if phenomenon is Phenomenon.UNKNOWN:
        warnings.append(f"phénomène inconnu {item.phenomenon_id!r} ({departement}) : aucune diffusion")
    intervals: list[Interval] = []
    for lap in item.timelaps_items:
        if lap.end_time == lap.begin_time:
            continue
        intervals.append(_interval(lap.begin_time, lap.end_time, lap.color_id, departement, warnings))
    if not intervals:
        # No chronology: the phenomenon's colour holds for the whole period.
        intervals.append(
            _interval(
                period.begin_validity_time,
                period.end_validity_time,
                item.phenomenon_max_color_id,
                departement,
                warnings,
            )
        )
    return Vigilance(
        departement=departement,
        phenomenon=phenomenon,
        timeline=tuple(intervals),
        source=Source.METEOFRANCE,
        raw_phenomenon=item.phenomenon_id,
    )


def _interval(
    begin: datetime, end: datetime | None, raw_color: str | None, where: str, warnings: list[str]
) -> Interval:
    color = Color.from_level(raw_color)
    if color is Color.UNKNOWN:
        warnings.append(f"couleur inconnue {raw_color!r} ({where}) : traitée comme inconnue, jamais comme rouge")
    return Interval(begin=begin, end=end, color=color, raw_color=raw_color)


def parse_warning_full(payload: bytes | str | Mapping[str, Any]) -> VigilanceSnapshot:
    """The mobile-app `warning/full?domain=…` document (epoch times; an item ends where the next begins)."""
    product_name = "warning-full"
    document = _validate(_MobileWarning, load_json(payload, product_name), product_name)
    departement, _coastal = _departement_of_domain(document.domain_id)
    if departement is None:
        raise _refuse(product_name, f"domaine hors métropole ou inconnu : {document.domain_id!r}")
    end_of_validity = _from_epoch(document.end_validity_time, product_name)
    warnings: list[str] = []
    vigilances: list[Vigilance] = []
    try:
        for lap in document.timelaps:
            items = sorted(lap.timelaps_items, key=lambda item: item.begin_time)
            intervals = []
            for index, item in enumerate(items):
                begin = _from_epoch(item.begin_time, product_name)
                end = (
                    _from_epoch(items[index + 1].begin_time, product_name)
                    if index + 1 < len(items)
                    else end_of_validity
                )
                if end > begin:
                    intervals.append(_interval(begin, end, item.color_id, departement, warnings))
            if not intervals:
                raise _refuse(product_name, f"phénomène {lap.phenomenon_id} sans intervalle valide")
            phenomenon = Phenomenon.from_meteofrance_id(lap.phenomenon_id)
            if phenomenon is Phenomenon.UNKNOWN:
                warnings.append(f"phénomène inconnu {lap.phenomenon_id!r} ({departement}) : aucune diffusion")
            vigilances.append(
                Vigilance(
                    departement=departement,
                    phenomenon=phenomenon,
                    timeline=tuple(intervals),
                    source=Source.METEOFRANCE,
                    raw_phenomenon=lap.phenomenon_id,
                )
            )
    except ValidationError as invalid:
        raise _refuse(product_name, f"valeurs incohérentes : {invalid.errors()[0]['msg']}") from invalid
    combined = combine(vigilances)
    coverage = frozenset((v.departement, v.phenomenon) for v in combined if v.phenomenon is not Phenomenon.UNKNOWN)
    identity = DocumentIdentity(
        source=Source.METEOFRANCE,
        product=f"{product_name}/{document.domain_id}",
        update_time=_from_epoch(document.update_time, product_name),
    )
    return VigilanceSnapshot(identity=identity, vigilances=combined, coverage=coverage, warnings=tuple(warnings))


def _from_epoch(value: float, product: str) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as wrong:
        raise _refuse(product, f"horodatage invalide : {value!r}") from wrong


def parse_document(payload: bytes | str | Mapping[str, Any]) -> VigilanceSnapshot:
    """Any colour-bearing Météo-France shape: the carte (wrapped or bare) or the mobile `warning/full`."""
    document = load_json(payload, "document Météo-France")
    inner, _ = _unwrap(document, "document Météo-France")
    if "periods" in inner or inner.get("type_cdp") == "cdp_carte_externe":
        return parse_carte(document)
    if "timelaps" in inner and isinstance(inner.get("timelaps"), list):
        return parse_warning_full(inner)
    if "text_bloc_items" in inner:
        raise _refuse(
            "textesvigilance", "bulletin de textes : lisez-le avec parse_bulletin, les couleurs viennent de la carte"
        )
    raise _refuse("document Météo-France", "forme inconnue (ni carte, ni warning/full)")


class BulletinText(_Frozen):
    """One text of a vigilance bulletin (national, zonal or departmental)."""

    domain_id: str
    departement: Departement | None = None
    phenomenon: Phenomenon | None = Field(default=None, description="None: every phenomenon ('tous aléas').")
    group: str | None = Field(default=None, description="SITUATION or SUIVI.")
    term: str
    begin: UtcDatetime | None = None
    end: UtcDatetime | None = None
    bulletin_level: Color = Field(
        description="The bulletin's level (risk_code). NOT the département's current colour: take that from the carte."
    )
    text: str


class VigilanceBulletin(_Frozen):
    """`textesvigilance/encours`: the texts that go with the carte."""

    identity: DocumentIdentity
    domains: tuple[str, ...]
    texts: tuple[BulletinText, ...]

    def for_departement(self, departement: str, phenomenon: Phenomenon | None = None) -> tuple[BulletinText, ...]:
        return tuple(
            text
            for text in self.texts
            if text.departement == departement and (phenomenon is None or text.phenomenon in (None, phenomenon))
        )


def parse_bulletin(payload: bytes | str | Mapping[str, Any], *, etag: str | None = None) -> VigilanceBulletin:
    product_name = "textesvigilance"
    document = load_json(payload, product_name)
    inner, meta_data = _unwrap(document, product_name)
    if inner.get("type_cdp") not in (None, "cdp_textes"):
        raise _refuse(product_name, f"type de produit inattendu : {inner.get('type_cdp')!r}")
    product = _validate(_TextesProduct, inner, product_name)
    meta = _validate(_Meta, meta_data, product_name) if meta_data is not None else None
    texts: list[BulletinText] = []
    try:
        for bloc in product.text_bloc_items:
            departement, _coastal = _departement_of_domain(bloc.domain_id)
            for bloc_item in bloc.bloc_items:
                for text_item in bloc_item.text_items:
                    phenomenon = (
                        Phenomenon.from_meteofrance_id(text_item.hazard_code) if text_item.hazard_code else None
                    )
                    for term in text_item.term_items:
                        body = "\n".join(
                            line.strip()
                            for sub in term.subdivision_text
                            for line in (sub.bold_text, sub.underline_text, *sub.text)
                            if line and line.strip()
                        )
                        texts.append(
                            BulletinText(
                                domain_id=bloc.domain_id,
                                departement=departement,
                                phenomenon=phenomenon,
                                group=bloc_item.type_group,
                                term=term.term_names,
                                begin=term.start_time,
                                end=term.end_time,
                                bulletin_level=Color.from_level(term.risk_code),
                                text=body,
                            )
                        )
    except ValidationError as invalid:
        raise _refuse(product_name, f"valeurs incohérentes : {invalid.errors()[0]['msg']}") from invalid
    identity = DocumentIdentity(
        source=Source.METEOFRANCE,
        product=product_name,
        update_time=product.update_time,
        snapshot_id=meta.snapshot_id if meta else None,
        etag=etag,
    )
    return VigilanceBulletin(
        identity=identity, domains=tuple(bloc.domain_id for bloc in product.text_bloc_items), texts=tuple(texts)
    )


# -- client ------------------------------------------------------------------------------------------------------


class MeteoFranceCredentials(BaseModel):
    """Either the portal's API key, or OAuth2 client credentials: the portal's base64 `application_id`
    (consumerKey:consumerSecret) or the pair itself. Secrets never appear in logs or reprs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    application_id: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _one_method(self) -> MeteoFranceCredentials:
        pair = self.client_id is not None or self.client_secret is not None
        if pair and (self.client_id is None or self.client_secret is None):
            raise ValueError("client_id et client_secret vont ensemble")
        methods = sum((self.api_key is not None, self.application_id is not None, pair))
        if methods != 1:
            raise ValueError("une seule méthode : api_key, application_id, ou client_id + client_secret")
        return self

    @property
    def method(self) -> Literal["apikey", "oauth2"]:
        return "apikey" if self.api_key is not None else "oauth2"

    def basic_authorization(self) -> str:
        if self.application_id is not None:
            return self.application_id.get_secret_value().strip()
        if self.client_id is None or self.client_secret is None:
            raise ValueError("pas d'identifiants OAuth2 (clé d'API seulement)")
        pair = f"{self.client_id}:{self.client_secret.get_secret_value()}"
        return base64.b64encode(pair.encode()).decode()


@dataclass
class _Token:
    value: str
    expires_at: datetime


class TokenCache:
    """OAuth2 access tokens per (token endpoint, application), kept until shortly before they expire.
    One shared instance per container: a warm Lambda reuses the token across invocations."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}

    def get(self, key: str, now: datetime) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires_at - TOKEN_MARGIN <= now:
            return None
        return token.value

    def put(self, key: str, value: str, expires_at: datetime) -> None:
        self._tokens[key] = _Token(value, expires_at)

    def drop(self, key: str) -> None:
        self._tokens.pop(key, None)

    def clear(self) -> None:
        self._tokens.clear()


SHARED_TOKENS: Final = TokenCache()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _api_description(response: httpx.Response) -> str:
    """The gateway's own words ("Invalid JWT token…"), from JSON {description}/{fault: {description}} or text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    if isinstance(body, dict):
        fault = body.get("fault") if isinstance(body.get("fault"), dict) else body
        for field in ("description", "message", "detail"):
            value = fault.get(field) if isinstance(fault, dict) else None
            if value:
                return str(value)[:300]
    return response.text[:300].strip()


class MeteoFranceSource:
    """Fetches the national carte with an API key (`apikey` header) or an OAuth2 bearer token.

    OAuth2: the token comes from the portal's client-credentials endpoint and is cached until shortly before
    its expiry; a 401 ("Invalid JWT token" when it expired early) drops it and retries once with a new one; a
    second 401 raises SourceAuthError. Timeouts, 429 and 5xx raise SourceUnavailable (try MeteoAlarm).
    """

    source: Final = Source.METEOFRANCE

    def __init__(
        self,
        http: httpx.Client,
        base_url: str | None,
        credentials: MeteoFranceCredentials | None,
        *,
        token_url: str | None = None,
        tokens: TokenCache | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if credentials is None:
            raise SourceNotConfigured(SOURCE_NAME, "ni clé d'API ni identifiants OAuth2 configurés")
        self.http = http
        self.base_url = _host_part(base_url) if base_url else base_url_from_env()
        self.credentials = credentials
        self.token_url = token_url or token_url_for(self.base_url)
        self.tokens = tokens if tokens is not None else SHARED_TOKENS
        self.clock = clock
        self._token_key = hashlib.sha256(
            f"{self.token_url}\0{credentials.basic_authorization() if credentials.method == 'oauth2' else ''}".encode()
        ).hexdigest()

    @property
    def carte_url(self) -> str:
        return f"{self.base_url}{CARTE_PATH}"

    @property
    def textes_url(self) -> str:
        return f"{self.base_url}{TEXTES_PATH}"

    def fetch(self) -> VigilanceSnapshot:
        response = self._get(self.carte_url)
        return parse_carte(response.content, etag=response.headers.get("etag"))

    def fetch_if_changed(self, previous: DocumentIdentity | None) -> VigilanceSnapshot | None:
        """None when the carte is the one already processed (304 on its ETag, or the same update_time and
        snapshot_id): the poller skips the diff, and only runs `expire` for alerts whose end has passed."""
        headers = {}
        if previous is not None and previous.etag and previous.source is Source.METEOFRANCE:
            headers["If-None-Match"] = previous.etag
        response = self._get(self.carte_url, headers)
        if response.status_code == 304:
            return None
        snapshot = parse_carte(response.content, etag=response.headers.get("etag"))
        return None if snapshot.identity.same_document(previous) else snapshot

    def fetch_bulletin(self) -> VigilanceBulletin | None:
        """The bulletin texts; None when none is published (404 "no matching blob")."""
        response = self._get(self.textes_url, allow_not_found=True)
        if response.status_code == 404:
            return None
        return parse_bulletin(response.content, etag=response.headers.get("etag"))

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def _get(
        self, url: str, headers: Mapping[str, str] | None = None, *, allow_not_found: bool = False
    ) -> httpx.Response:
        refreshed = False
        while True:
            response = self._send("GET", url, headers={**(headers or {}), **self._authorization()})
            if response.status_code == 401 and self.credentials.method == "oauth2" and not refreshed:
                logger.warning(
                    "Météo-France a refusé le jeton (%s) : un nouveau jeton, un essai", _api_description(response)
                )
                self.tokens.drop(self._token_key)
                refreshed = True
                continue
            return self._checked(response, refreshed=refreshed, allow_not_found=allow_not_found)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.TimeoutException as timeout:
            raise SourceUnavailable(SOURCE_NAME, f"délai dépassé ({url})") from timeout
        except httpx.TransportError as transport:
            raise SourceUnavailable(SOURCE_NAME, f"injoignable ({transport})") from transport

    def _checked(self, response: httpx.Response, *, refreshed: bool, allow_not_found: bool) -> httpx.Response:
        status = response.status_code
        if status in (200, 304) or (status == 404 and allow_not_found):
            if status == 200 and len(response.content) > MAX_DOCUMENT_BYTES:
                raise _refuse("réponse", f"trop volumineuse ({len(response.content)} octets)")
            return response
        description = _api_description(response)
        if status == 401:
            after = " même avec un nouveau jeton" if refreshed else ""
            raise SourceAuthError(SOURCE_NAME, f"401 refusé{after} : {description}")
        if status == 403:
            raise SourceAuthError(SOURCE_NAME, f"403 accès refusé (abonnement à l'API DPVigilance ?) : {description}")
        if status == 429 or status >= 500 or status == 404:
            raise SourceUnavailable(SOURCE_NAME, f"HTTP {status} : {description}")
        raise WeatherSourceError(SOURCE_NAME, f"HTTP {status} inattendu : {description}")

    def _authorization(self) -> dict[str, str]:
        if self.credentials.api_key is not None:
            return {"apikey": self.credentials.api_key.get_secret_value()}
        return {"Authorization": f"Bearer {self._token()}"}

    def _token(self) -> str:
        now = self.clock()
        cached = self.tokens.get(self._token_key, now)
        if cached is not None:
            return cached
        response = self._send(
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {self.credentials.basic_authorization()}"},
        )
        if response.status_code in (400, 401, 403):
            raise SourceAuthError(
                SOURCE_NAME, f"jeton OAuth2 refusé (HTTP {response.status_code}) : {_api_description(response)}"
            )
        if response.status_code != 200:
            raise SourceUnavailable(SOURCE_NAME, f"jeton OAuth2 : HTTP {response.status_code}")
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = int(body.get("expires_in", TOKEN_LIFETIME_S))
        except (ValueError, KeyError, TypeError) as wrong:
            raise SourceAuthError(SOURCE_NAME, "réponse de jeton OAuth2 illisible") from wrong
        if not isinstance(token, str) or not token:
            raise SourceAuthError(SOURCE_NAME, "réponse de jeton OAuth2 sans access_token")
        self.tokens.put(self._token_key, token, now + timedelta(seconds=lifetime))
        return token
