"""pydantic validation errors turned into what a person can act on: a field path and a French message."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

_MESSAGES = {
    "missing": "Ce champ est obligatoire.",
    "extra_forbidden": "Champ inconnu : il n'est pas accepté.",
    "string_too_short": "Trop court : au moins {min_length} caractère(s).",
    "string_too_long": "Trop long : au plus {max_length} caractères.",
    "too_short": "Trop peu d'éléments : au moins {min_length}.",
    "too_long": "Trop d'éléments : au plus {max_length}.",
    "literal_error": "Valeur non permise : attendu {expected}.",
    "enum": "Valeur non permise : attendu {expected}.",
    "json_invalid": "JSON invalide : {error}.",
    "model_attributes_type": "Un objet JSON est attendu.",
    "model_type": "Un objet JSON est attendu.",
    "dict_type": "Un objet JSON est attendu.",
    "list_type": "Une liste est attendue.",
    "string_type": "Du texte est attendu.",
    "bool_type": "Vrai ou faux (true/false) est attendu.",
    "bool_parsing": "Vrai ou faux (true/false) est attendu.",
    "int_type": "Un nombre entier est attendu.",
    "int_parsing": "Un nombre entier est attendu.",
    "greater_than_equal": "Doit valoir au moins {ge}.",
    "less_than_equal": "Doit valoir au plus {le}.",
    "datetime_type": "Une date et heure ISO 8601 est attendue (ex. 2026-12-01T08:00:00+01:00).",
    "datetime_parsing": "Date et heure illisible : format ISO 8601 attendu (ex. 2026-12-01T08:00:00+01:00).",
    "datetime_from_date_parsing": "Date et heure illisible : format ISO 8601 attendu (ex. 2026-12-01T08:00:00+01:00).",
    "url_parsing": "Adresse web invalide.",
    "url_scheme": "Adresse web invalide : https:// attendu.",
    "url_type": "Adresse web invalide.",
    "string_pattern_mismatch": "Format invalide.",
    "dict_attributes_type": "Un objet JSON est attendu.",
}


def french_message(error: Any) -> str:
    """One pydantic error dict in French. Our own validators already raise French messages."""
    kind = error.get("type", "")
    if kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    template = _MESSAGES.get(kind)
    if template is None:
        return str(error.get("msg", "Valeur invalide."))
    context = dict(error.get("ctx") or {})
    if "expected" in context:
        context["expected"] = str(context["expected"]).replace(" or ", " ou ")
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return template.split(":")[0] + "."


def field_path(location: Sequence[Any]) -> str:
    """`("body", "media", 0, "alt")` → `media[0].alt`; the request part (body, query…) is dropped."""
    parts = [part for part in location if part not in ("body", "query", "path", "header", "")]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def field_errors(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """pydantic errors as (field, French message) pairs; unreadable JSON is the body's fault as a whole."""
    return [
        ("body" if error.get("type") == "json_invalid" else field_path((*prefix, *error["loc"])), french_message(error))
        for error in errors
    ]


# --- what the OpenAPI document says about refusals --------------------------------------------------------


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, in French; some problems add members of their own (a budget's figures)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class GatewayMessage(BaseModel):
    """What API Gateway answers by itself (no route, no Authorization header, body over 10 MB)."""

    message: str


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the API really answers: every 4xx is a French problem (`application/problem+json`,
    or API Gateway's own `{"message"}`), 422 included, instead of powertools' FastAPI-shaped validation error;
    a 204 has no body."""
    fixed = copy.deepcopy(document)
    schemas = fixed.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, GatewayMessage):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    problem = {"application/problem+json": {"schema": _ref("Problem")}}
    for item in fixed.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses["422"] = {"description": "Données invalides (champs nommés dans errors)"}
            for code, response in responses.items():
                if code.startswith("4"):
                    # A page a person opens from an e-mail answers its refusals as a page (text/html) too.
                    response["content"] = {**response.get("content", {}), **problem}
            responses["4XX"] = {
                "description": "Requête refusée : problème RFC 9457 en français, ou message d'API Gateway",
                "content": {**problem, "application/json": {"schema": _ref("GatewayMessage")}},
            }
            if "204" in responses:
                responses["204"].pop("content", None)
    return fixed
