"""Errors the use cases raise; the API turns them into RFC 9457 problems, in French."""

from __future__ import annotations

from typing import Any


class CrieurError(Exception):
    status = 400
    title = "Requête refusée"

    def __init__(
        self, detail: str, errors: list[tuple[str, str]] | None = None, extensions: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extensions = extensions or {}
        """RFC 9457 extension members (e.g. the estimate and the remaining budget of a 402)."""


class InvalidInput(CrieurError):
    """422, naming each faulty field."""

    status = 422
    title = "Données invalides"

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("Corrigez les champs indiqués puis réessayez.", errors)


class Unauthenticated(CrieurError):
    status = 401
    title = "Clé d'API manquante ou invalide"

    def __init__(self) -> None:
        super().__init__(
            "Indiquez la clé d'API de la commune : Authorization: Bearer <clé>. Une clé révoquée ne vaut plus."
        )


class OverBudget(CrieurError):
    """402: the publication would exceed the commune's monthly budget."""

    status = 402
    title = "Budget mensuel dépassé"


class NotFound(CrieurError):
    """404, also for another commune's ids: existence is never revealed."""

    status = 404
    title = "Introuvable"


class Conflict(CrieurError):
    status = 409
    title = "Conflit"


class Unavailable(CrieurError):
    status = 503
    title = "Service momentanément indisponible"
