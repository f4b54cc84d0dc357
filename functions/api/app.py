"""HTTP API: parses the request, calls one use case, shapes the answer (RFC 9457 problems in French)."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from functools import cache, partial
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.shared.json_encoder import Encoder
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import config
from crieur.channels.base import ChannelCheck
from crieur.errors import Conflict, CrieurError, Unauthenticated
from crieur.errors import NotFound as CrieurNotFound
from crieur.models import (
    ChannelConfigRequest,
    ChannelConfigView,
    ChannelList,
    ChannelName,
    Preview,
    Publication,
    PublicationEdit,
    PublicationPage,
    PublicationRequest,
    PublicationStatus,
    UsageReport,
    WeatherAlertSettings,
    utc_now,
)
from crieur.problems import FieldProblem, Problem, document_problems, field_errors

if TYPE_CHECKING:
    from crieur import subscribers
    from crieur.channels import webpush
    from crieur.eventhooks import model as hooks
    from crieur.eventhooks.service import EventEndpoints
    from crieur.inbound import model as inbound
    from crieur.inbound.service import InboundSources, InboundWebhooks
    from crieur.service import PublicationService
    from crieur.weather.broadcast import WeatherAlerts


def lazy(name: str) -> ModuleType:
    """The module `name`, executed on its first attribute access.

    A route's annotations are read when the route is first called (powertools builds each route's validation
    lazily), so the models of the routes a request does not take (subscriptions, Web Push, webhooks) and their
    libraries (email_validator, phonenumbers, cryptography) stay out of its cold start (ARCHITECTURE.md §8)."""
    found = sys.modules.get(name)
    if found is not None:
        return found
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


if not TYPE_CHECKING:
    subscribers = lazy("crieur.subscribers")
    webpush = lazy("crieur.channels.webpush")
    hooks = lazy("crieur.eventhooks.model")
    inbound = lazy("crieur.inbound.model")

MAX_BODY_BYTES = 256 * 1024
PUBLIC_FILE_TYPES = (
    "application/atom+xml",
    "application/rss+xml",
    "application/feed+json",
    "text/calendar",
    "text/javascript",
    "text/html",
)
"""The media types of the website channel's public files (crieur.channels.website.CONTENT_TYPES, not imported
here: it pulls the feed generators in at cold start)."""
PROBLEM = "application/problem+json"
NOT_JSON = "Envoyez du JSON : en-tête Content-Type: application/json."
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
DOCS = "/v1/docs"

logger = Logger()
# UTF-8 bodies: "Marché de Noël", not "March\u00e9 de No\u00ebl".
app = APIGatewayHttpResolver(
    enable_validation=True, serializer=partial(json.dumps, separators=(",", ":"), cls=Encoder, ensure_ascii=False)
)


@cache
def configure_openapi() -> None:
    """The document's title and security scheme: only the OpenAPI routes need them, and powertools' models of
    the OpenAPI document (~30 ms to import) with them (ARCHITECTURE.md §8)."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app.configure_openapi(
        title="Crieur",
        version="1",
        description="Publier une fois, diffuser partout : l'API des communes.",
        security_schemes={"bearer": HTTPBearer(description="Clé d'API de la commune")},
        security=[{"bearer": []}],
    )


@cache
def enable_docs() -> None:
    """The Swagger UI at /v1/docs, registered by the first request for it: registering imports the OpenAPI
    models too."""
    configure_openapi()
    app.enable_swagger(path=DOCS)


@cache
def service() -> PublicationService:
    from crieur.service import PublicationService

    return PublicationService(
        store=config.store(),
        fanout=config.fanout(),
        vault=config.vault(),
        http=config.http,
        scheduling=config.scheduling,
        events=config.events(),
    )


def commune() -> str:
    """The caller's commune, as the authorizer resolved it from the API key."""
    found = app.current_event.request_context.authorizer.get_lambda.get("commune")
    if not found:
        raise Unauthenticated()
    return str(found)


def unauthenticated(event: dict[str, Any]) -> bool:
    """A guarded route (the authorizer ran) whose key matched no commune.

    The authorizer lets unknown keys through with an empty commune so that the answer is a 401 in
    French here; API Gateway itself could only answer 403 {"message": "Forbidden"}.
    """
    authorizer = event.get("requestContext", {}).get("authorizer")
    return authorizer is not None and not (authorizer.get("lambda") or {}).get("commune")


def problem_body(
    status: int,
    title: str,
    detail: str,
    errors: list[tuple[str, str]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> str:
    listed = None if errors is None else [FieldProblem(field=field, message=message) for field, message in errors]
    answer = Problem(title=title, status=status, detail=detail, errors=listed, **(extensions or {}))
    return answer.model_dump_json(exclude_none=True)


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[tuple[str, str]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response[str]:
    return Response(
        status_code=status, content_type=PROBLEM, body=problem_body(status, title, detail, errors, extensions)
    )


@app.exception_handler(  # type: ignore[untyped-decorator]
    RequestValidationError
)
def invalid_request(error: RequestValidationError) -> Response[str]:
    return problem(
        422, "Données invalides", "Corrigez les champs indiqués puis réessayez.", field_errors(error.errors())
    )


@app.exception_handler(  # type: ignore[untyped-decorator]
    RequestUnsupportedContentType
)
def not_json(_: RequestUnsupportedContentType) -> Response[str]:
    return problem(415, "Format non pris en charge", NOT_JSON, [("Content-Type", NOT_JSON)])


def form_body(event: dict[str, Any]) -> bool:
    """A body sent as a form: powertools would parse it as one (and fail on a multipart without a boundary),
    whereas the API takes JSON only."""
    content_type = str((event.get("headers") or {}).get("content-type", ""))
    return bool(event.get("body")) and content_type.split(";", 1)[0].strip().lower() in FORM_TYPES


def undecodable_body(event: dict[str, Any]) -> bool:
    """A base64 body (API Gateway's way for bytes) that is not UTF-8 text, hence no JSON either."""
    if not event.get("isBase64Encoded") or not event.get("body"):
        return False
    try:
        base64.b64decode(str(event["body"])).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return True
    return False


@app.exception_handler(  # type: ignore[untyped-decorator]
    CrieurError
)
def refused(error: CrieurError) -> Response[str]:
    return problem(error.status, error.title, error.detail, error.errors or None, error.extensions)


class KeyReused(CrieurError):
    status = 422
    title = "Données invalides"

    def __init__(self) -> None:
        message = "Cette clé a déjà servi pour une publication différente : utilisez une nouvelle clé."
        super().__init__(message, [("Idempotency-Key", message)])


@app.not_found
def no_route(_: NotFoundError) -> Response[str]:
    return problem(404, "Introuvable", f"Aucune ressource {app.current_event.path}.")


@app.get("/v1/health", security=[{}])
def health() -> dict[str, str]:
    return {"status": "ok"}


@cache
def openapi_document() -> str:
    """The OpenAPI 3.1 document, with the problems (RFC 9457) the API really answers with."""
    configure_openapi()
    document = document_problems(json.loads(app.get_openapi_json_schema()))
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


@app.get("/v1/openapi.json", security=[{}], include_in_schema=False)
def openapi() -> Response[str]:
    return Response(200, "application/json", openapi_document())


@app.post("/v1/publications", responses={201: {"description": "Publication acceptée"}})
def create_publication(
    request: PublicationRequest,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> Response[Publication]:
    where = commune()
    if idempotency_key:
        publication = service().get_publication(where, published_once(where, idempotency_key, request))
    else:
        publication = service().publish(where, request)
    return Response(
        status_code=201,
        content_type="application/json",
        body=publication,
        headers={"Location": f"/v1/publications/{publication.id}"},
    )


def published_once(where: str, key: str, request: PublicationRequest) -> str:
    """The id of the publication this `Idempotency-Key` created, publishing it first if the key is new (the
    idempotency layer is loaded by the requests that carry a key, and only by them)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    from crieur import idempotency

    idempotency.config().register_lambda_context(app.lambda_context)
    try:
        return idempotency.once(
            where, key, request.model_dump(mode="json"), lambda: service().publish(where, request).id
        )
    except IdempotencyValidationError as reused:
        raise KeyReused() from reused
    except IdempotencyAlreadyInProgressError as running:
        raise Conflict("Une publication avec cette clé est en cours de création : réessayez.") from running


@app.get("/v1/publications")
def list_publications(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    status: Annotated[PublicationStatus | None, Query()] = None,
) -> PublicationPage:
    return service().list_publications(commune(), limit, cursor, status)


@app.get("/v1/publications/<publication_id>")
def get_publication(publication_id: Annotated[str, Path(max_length=64)]) -> Publication:
    return service().get_publication(commune(), publication_id)


@app.patch("/v1/publications/<publication_id>")
def edit_publication(publication_id: Annotated[str, Path(max_length=64)], edit: PublicationEdit) -> Publication:
    """Modifie le texte ou l'heure d'une publication programmée (sa programmation suit)."""
    return service().edit(commune(), publication_id, edit)


@app.delete(
    "/v1/publications/<publication_id>",
    responses={200: {"description": "Publication programmée annulée"}, 202: {"description": "Retrait en cours"}},
)
def retract_publication(publication_id: Annotated[str, Path(max_length=64)]) -> Response[Publication]:
    """Annule une publication programmée ; retire une publication diffusée de chaque canal qui le permet."""
    publication = service().retract(commune(), publication_id)
    status = 200 if publication.status == "cancelled" else 202
    return Response(status_code=status, content_type="application/json", body=publication)


@app.post("/v1/publications/<publication_id>/retry", responses={202: {"description": "Nouvel essai en cours"}})
def retry_publication(publication_id: Annotated[str, Path(max_length=64)]) -> Response[Publication]:
    """Relance la diffusion sur les canaux où elle a échoué (une fois la diffusion terminée)."""
    publication = service().retry(commune(), publication_id)
    return Response(status_code=202, content_type="application/json", body=publication)


@app.post("/v1/previews")
def preview(request: PublicationRequest) -> Preview:
    """Ce que chaque canal recevrait : texte, longueur comptée et limite, médias gardés ou écartés, avertissements."""
    return service().preview(commune(), request)


@app.get(
    "/v1/usage",
    responses={
        200: {
            "description": "Consommation du mois",
            "content": {"application/json": {"model": UsageReport}, "text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def get_usage(
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Response[Any]:
    """Ce que la commune a consommé ce mois-ci (ou `month`) : lignes, total HT, TVA, TTC ; `format=csv` pour la
    comptabilité."""
    from crieur.billing import billing_month, price_list
    from crieur.usage import usage_csv, usage_report

    where = commune()
    chosen = month or billing_month(utc_now())
    report = usage_report(config.store(), price_list(), where, chosen)
    if output == "csv":
        return Response(
            status_code=200,
            content_type="text/csv; charset=utf-8",
            body=usage_csv(report),
            headers={"Content-Disposition": f'attachment; filename="crieur-{where}-{chosen}.csv"'},
        )
    return Response(status_code=200, content_type="application/json", body=report)


@cache
def weather_alerts() -> WeatherAlerts:
    from crieur.weather.broadcast import WeatherAlerts

    return WeatherAlerts(store=config.store(), publications=service, sources=config.vigilance_sources)


@app.get("/v1/alerts/weather")
def get_weather_alerts() -> WeatherAlertSettings:
    """Les vigilances météo officielles que la commune relaie automatiquement, et sur quels canaux."""
    return weather_alerts().settings(commune())


@app.put("/v1/alerts/weather")
def put_weather_alerts(settings: WeatherAlertSettings) -> WeatherAlertSettings:
    """Active ou règle le relais automatique des vigilances orange et rouge du département."""
    return weather_alerts().configure(commune(), settings)


# --- outbound event webhooks: the commune's endpoints for status events (crieur.eventhooks) ---------------


@cache
def event_endpoints() -> EventEndpoints:
    from crieur.eventhooks.service import EventEndpoints

    return EventEndpoints(store=config.store(), vault=config.vault())


@app.get("/v1/event-endpoints")
def list_event_endpoints() -> hooks.EventEndpointList:
    """Les adresses qui reçoivent les événements de la commune (publication diffusée, échec, canal à
    reconnecter, budget atteint), sans leurs secrets."""
    return event_endpoints().list_endpoints(commune())


@app.post(
    "/v1/event-endpoints", responses={201: {"description": "Point de réception créé : secret affiché une seule fois"}}
)
def create_event_endpoint(request: hooks.EventEndpointRequest) -> Response[hooks.NewEventEndpoint]:
    """Abonne une adresse https à des événements, envoyés signés (Standard Webhooks) : le secret whsec_… qui
    permet de vérifier la signature n'est montré qu'ici."""
    created = event_endpoints().create(commune(), request)
    return Response(status_code=201, content_type="application/json", body=created)


@app.delete("/v1/event-endpoints/<endpoint_id>", responses={204: {"description": "Point de réception retiré"}})
def delete_event_endpoint(endpoint_id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    event_endpoints().delete(commune(), endpoint_id)
    return Response(status_code=204, content_type="application/json", body="")


@app.get("/v1/channels")
def list_channels() -> ChannelList:
    return service().channels(commune())


@app.get("/v1/channels/<channel>")
def get_channel(channel: ChannelName) -> ChannelConfigView:
    return service().channel(commune(), channel)


@app.put("/v1/channels/<channel>")
def put_channel(channel: ChannelName, request: ChannelConfigRequest) -> ChannelConfigView:
    return service().configure_channel(commune(), channel, request)


@app.post("/v1/channels/<channel>/test")
def test_channel(channel: ChannelName) -> ChannelCheck:
    """Essaie les identifiants enregistrés auprès du réseau, sans rien publier."""
    return service().test_channel(commune(), channel)


@app.delete("/v1/channels/<channel>", responses={204: {"description": "Canal retiré"}})
def delete_channel(channel: ChannelName) -> Response[str]:
    service().remove_channel(commune(), channel)
    return Response(status_code=204, content_type="application/json", body="")


# --- inbound webhooks: the sites a commune lets publish, and their signed calls (crieur.inbound) ----------


@cache
def inbound_sources() -> InboundSources:
    from crieur.inbound.service import InboundSources

    return InboundSources(store=config.store(), vault=config.vault())


@cache
def inbound_webhooks() -> InboundWebhooks:
    from crieur.inbound.service import InboundWebhooks

    return InboundWebhooks(sources=inbound_sources(), publications=service())


@app.get("/v1/inbound-sources")
def list_inbound_sources() -> inbound.InboundSourceList:
    """Les sites autorisés à publier par webhook, avec les dates de leurs secrets (jamais les secrets)."""
    return inbound_sources().list_sources(commune())


@app.post("/v1/inbound-sources", responses={201: {"description": "Source créée : secret affiché une seule fois"}})
def create_inbound_source(request: inbound.InboundSourceRequest) -> Response[inbound.NewInboundSource]:
    """Autorise un site à publier : son secret de signature whsec_… (et sa clé d'adresse) n'est montré qu'ici."""
    created = inbound_sources().create(commune(), request)
    return Response(
        status_code=201,
        content_type="application/json",
        body=created,
        headers={"Location": f"/v1/inbound-sources/{created.id}"},
    )


@app.get("/v1/inbound-sources/<source_id>")
def get_inbound_source(source_id: Annotated[str, Path(max_length=64)]) -> inbound.InboundSourceView:
    return inbound_sources().get(commune(), source_id)


@app.post("/v1/inbound-sources/<source_id>/rotate")
def rotate_inbound_secret(source_id: Annotated[str, Path(max_length=64)]) -> inbound.RotatedSecret:
    """Un nouveau secret ; l'ancien reste valide 24 heures, le temps de mettre le site à jour."""
    return inbound_sources().rotate(commune(), source_id)


@app.delete("/v1/inbound-sources/<source_id>", responses={204: {"description": "Source retirée"}})
def delete_inbound_source(source_id: Annotated[str, Path(max_length=64)]) -> Response[str]:
    inbound_sources().delete(commune(), source_id)
    return Response(status_code=204, content_type="application/json", body="")


@app.post(
    "/v1/inbound/<insee>/<source_id>",
    security=[{}],  # OpenAPI's "no authentication" (an empty list would inherit the global bearer)
    responses={
        200: {"description": "Message déjà reçu (même webhook-id) : la publication qu'il a créée"},
        201: {"description": "Publication acceptée"},
        401: {"description": "Signature, horodatage, source ou clé invalides"},
    },
)
def receive_inbound(
    insee: str, source_id: str, key: Annotated[str | None, Query(max_length=256)] = None
) -> Response[Publication]:
    """Webhook signé (Standard Webhooks : webhook-id, webhook-timestamp, webhook-signature) d'un site de la
    commune : une publication Crieur ou un article WordPress publié. Sans clé d'API : la signature fait foi."""
    from crieur.inbound.service import body_bytes

    event = app.current_event
    publication, created = inbound_webhooks().receive(
        insee, source_id, dict(event.headers), body_bytes(event.raw_event), key
    )
    return Response(
        status_code=201 if created else 200,
        content_type="application/json",
        body=publication,
        headers={"Location": f"/v1/publications/{publication.id}"},
    )


# --- the website channel's public files (crieur.channels.website), no API key ------------------------------


@app.get(
    "/public/<insee>/<name>",
    security=[{}],
    responses={
        200: {
            "description": "Le fichier public",
            "content": {kind: {"schema": {"type": "string"}} for kind in PUBLIC_FILE_TYPES},
        },
        404: {"description": "Fichier inconnu"},
    },
)
def public_file(insee: str, name: str) -> Response[str]:
    """Les flux (Atom, RSS, JSON Feed), l'agenda iCalendar, les alertes CAP et le widget de la commune."""
    from crieur.channels.website import CONTENT_TYPES, read_public
    from crieur.models import INSEE_PATTERN

    if name not in CONTENT_TYPES or not INSEE_PATTERN.match(insee):
        return problem(404, "Introuvable", f"Aucune ressource {app.current_event.path}.")
    body = read_public(insee, name)
    if body is None:
        return problem(404, "Introuvable", "La commune n'a encore rien publié sur son site Crieur.")
    headers = {"Cache-Control": "public, max-age=60", "X-Content-Type-Options": "nosniff"}
    return Response(200, CONTENT_TYPES[name], body.decode(), headers=headers)


# --- the mairie's web console (crieur.console): static files, no API key (the page asks for it) -----------


@app.get("/console", security=[{}], include_in_schema=False)
def console_home() -> Response[str]:
    """The console's relative links need its address with the final slash."""
    return Response(308, "text/plain; charset=utf-8", "", headers={"Location": "/console/"})


@app.get("/console/", security=[{}], include_in_schema=False)
def console_index() -> Response[str]:
    return console_file("index.html")


@app.get("/console/<name>", security=[{}], include_in_schema=False)
def console_file(name: str) -> Response[str]:
    from crieur.console import headers, read_asset

    asset = read_asset(name)
    if asset is None:
        return problem(404, "Introuvable", f"Aucune ressource {app.current_event.path}.")
    if app.current_event.headers.get("if-none-match") == asset.etag:
        return Response(304, asset.content_type, "", headers=headers(asset))
    return Response(200, asset.content_type, asset.body, headers=headers(asset))


# --- Web Push subscriptions of the commune's website (crieur.channels.webpush), no API key -----------------


@app.get("/public/<insee>/webpush/key", security=[{}], responses={404: {"description": "Canal non configuré"}})
def webpush_key(insee: Annotated[str, Path(max_length=5)]) -> dict[str, str]:
    """La clé publique VAPID (applicationServerKey, base64url) que la page passe à pushManager.subscribe."""
    from crieur.channels.webpush import commune_public_key

    key = commune_public_key(config.store(), config.vault(), insee)
    if key is None:
        raise CrieurNotFound("Les notifications du site ne sont pas configurées pour cette commune.")
    return {"publicKey": key}


@app.post("/public/<insee>/webpush/subscriptions", security=[{}], responses={201: {"description": "Abonné"}})
def webpush_subscribe(
    insee: Annotated[str, Path(max_length=5)], request: webpush.WebPushSubscriptionRequest
) -> Response[dict[str, Any]]:
    """Enregistre l'abonnement d'un navigateur (PushSubscription et catégories choisies, aucune : toutes)."""
    from crieur.channels.webpush import subscribe

    subscription_id, created = subscribe(config.store(), insee, request)
    body = {"id": subscription_id, "categories": sorted(set(request.categories))}
    return Response(status_code=201 if created else 200, content_type="application/json", body=body)


@app.delete("/public/<insee>/webpush/subscriptions", security=[{}], responses={204: {"description": "Désabonné"}})
def webpush_unsubscribe(
    insee: Annotated[str, Path(max_length=5)], request: webpush.WebPushUnsubscribeRequest
) -> Response[str]:
    """Retire l'abonnement d'un navigateur (corps : {"endpoint": …})."""
    from crieur.channels.webpush import unsubscribe

    unsubscribe(config.store(), insee, request)
    return Response(status_code=204, content_type="application/json", body="")


# --- SMS and e-mail subscriptions of residents (crieur.subscribers), no API key ----------------------------

INSEE = r"^(?:\d{5}|2[AB]\d{3})$"
HTML = "text/html; charset=utf-8"
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def request_base_url() -> str:
    """This API's own URL, for the links of a confirmation e-mail (API Gateway sets these headers)."""
    headers = app.current_event.headers
    scheme = headers.get("x-forwarded-proto", "https")
    port = headers.get("x-forwarded-port", "")
    default = {"https": "443", "http": "80"}.get(scheme)
    host = app.current_event.request_context.domain_name
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def one_click_unsubscribe(event: dict[str, Any]) -> bool:
    """RFC 8058: mail clients POST `List-Unsubscribe=One-Click` as a form to the unsubscribe link."""
    path = str(event.get("rawPath") or "")
    method = str(event.get("requestContext", {}).get("http", {}).get("method", ""))
    return method == "POST" and path.startswith("/public/") and path.endswith("/subscriptions/unsubscribe")


@app.post(
    "/public/<insee>/subscriptions",
    security=[{}],
    responses={202: {"description": "Demande enregistrée : confirmation envoyée si l'adresse peut être inscrite"}},
)
def subscribe(
    insee: Annotated[str, Path(pattern=INSEE)], request: subscribers.SubscriptionRequest
) -> Response[subscribers.SubscriptionAccepted]:
    """Inscrit un numéro de mobile et/ou une adresse e-mail aux messages de la commune (sujets choisis, aucun :
    tous), avec la version du texte de consentement lu. Rien n'est envoyé avant la confirmation : un code par
    SMS, un lien par e-mail. La réponse est la même que l'adresse soit déjà inscrite ou non."""
    accepted = config.subscribers().subscribe(insee, request, request_base_url())
    return Response(status_code=202, content_type="application/json", body=accepted)


@app.delete("/public/<insee>/subscriptions", security=[{}], responses={204: {"description": "Désinscrit"}})
def unsubscribe_address(
    insee: Annotated[str, Path(pattern=INSEE)], request: subscribers.UnsubscribeRequest
) -> Response[str]:
    """Désinscrit un numéro et/ou une adresse et efface tout ce qui les concerne (même réponse s'ils n'étaient
    pas inscrits)."""
    config.subscribers().unsubscribe(insee, request)
    return Response(status_code=204, content_type="application/json", body="")


@app.post("/public/<insee>/subscriptions/confirm", security=[{}])
def confirm_code(
    insee: Annotated[str, Path(pattern=INSEE)], request: subscribers.CodeConfirmation
) -> subscribers.Confirmed:
    """Confirme une inscription par SMS avec le code à 6 chiffres reçu (5 essais)."""
    return config.subscribers().confirm_code(insee, request)


@app.get(
    "/public/<insee>/subscriptions/confirm",
    security=[{}],
    responses={
        200: {"description": "Inscription confirmée", "content": {HTML: {"schema": {"type": "string"}}}},
        404: {"description": "Lien invalide, utilisé ou expiré", "content": {HTML: {"schema": {"type": "string"}}}},
    },
)
def confirm_link(
    insee: Annotated[str, Path(pattern=INSEE)], token: Annotated[str, Query(max_length=200)]
) -> Response[str]:
    """Le lien de confirmation reçu par e-mail."""
    confirmed = config.subscribers().confirm_link(insee, token)
    return Response(200 if confirmed else 404, HTML, subscribers.confirmation_page(confirmed), headers=PAGE_HEADERS)


@app.get(
    "/public/<insee>/subscriptions/unsubscribe",
    security=[{}],
    responses={200: {"description": "Bouton de désinscription", "content": {HTML: {"schema": {"type": "string"}}}}},
)
def unsubscribe_page(
    insee: Annotated[str, Path(pattern=INSEE)], token: Annotated[str, Query(max_length=200)]
) -> Response[str]:
    """Le lien de désinscription d'un e-mail : une page avec un bouton (les robots qui ouvrent les liens ne
    désinscrivent personne)."""
    return Response(200, HTML, subscribers.unsubscribe_form_page(token), headers=PAGE_HEADERS)


@app.post(
    "/public/<insee>/subscriptions/unsubscribe",
    security=[{}],
    responses={
        200: {"description": "Désinscrit", "content": {HTML: {"schema": {"type": "string"}}}},
        404: {"description": "Lien invalide ou déjà utilisé", "content": {HTML: {"schema": {"type": "string"}}}},
    },
)
def unsubscribe_one_click(
    insee: Annotated[str, Path(pattern=INSEE)], token: Annotated[str, Query(max_length=200)]
) -> Response[str]:
    """Désinscription en un clic (RFC 8058 : le client de messagerie envoie List-Unsubscribe=One-Click)."""
    done = config.subscribers().unsubscribe_token(insee, token)
    return Response(200 if done else 404, HTML, subscribers.unsubscribed_page(done), headers=PAGE_HEADERS)


@app.get("/v1/subscribers")
def subscriber_counts() -> subscribers.SubscriberCounts:
    """Combien d'habitants sont inscrits par SMS et par e-mail (confirmés, en attente, par sujet) : des nombres
    seulement, jamais les adresses."""
    return config.subscribers().counts(commune())


def refused_early(event: dict[str, Any]) -> dict[str, Any] | None:
    """What is refused before routing: too big, a form or bytes instead of JSON, a key matching no commune."""
    if len(event.get("body") or "") > MAX_BODY_BYTES * (4 / 3 if event.get("isBase64Encoded") else 1):
        answer = (413, "Requête trop volumineuse", "Au plus 256 Kio.", [("body", "Au plus 256 Kio.")])
    elif form_body(event) and not one_click_unsubscribe(event):
        answer = (415, "Format non pris en charge", NOT_JSON, [("Content-Type", NOT_JSON)])
    elif undecodable_body(event):
        message = "JSON invalide : le corps n'est pas du texte UTF-8."
        answer = (422, "Données invalides", "Corrigez les champs indiqués puis réessayez.", [("body", message)])
    elif unauthenticated(event):
        error = Unauthenticated()
        return {
            "statusCode": 401,
            "headers": {"Content-Type": PROBLEM, "WWW-Authenticate": "Bearer"},
            "body": problem_body(error.status, error.title, error.detail),
        }
    else:
        return None
    return {"statusCode": answer[0], "headers": {"Content-Type": PROBLEM}, "body": problem_body(*answer)}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    early = refused_early(event)
    if early is not None:
        return early
    if event.get("rawPath") == DOCS:
        enable_docs()
    return app.resolve(event, context)
