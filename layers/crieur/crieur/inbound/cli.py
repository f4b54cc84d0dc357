"""`crieur inbound create-source`: the operator lets a commune's site publish by signed webhook."""

from __future__ import annotations

from pydantic import ValidationError

from crieur.credentials import KmsVault
from crieur.errors import InvalidInput
from crieur.inbound.model import InboundSourceRequest
from crieur.inbound.service import InboundSources
from crieur.problems import field_errors
from crieur.store import Store


def create_source(store: Store, credentials_key: str, commune: str, name: str, signed_only: bool) -> None:
    """Prints the source, where the site calls, and its secrets: the signing secret last, shown once."""
    try:
        request = InboundSourceRequest(name=name, signed_only=signed_only)
    except ValidationError as invalid:
        raise InvalidInput(field_errors(invalid.errors())) from invalid
    created = InboundSources(store, KmsVault(credentials_key)).create(commune, request)
    print(f"Source créée pour {commune} : {created.name} ({created.id}).")
    print(f"Le site appelle : POST {created.path} (en-têtes Standard Webhooks signés avec le secret ci-dessous).")
    if created.key:
        print("Repli pour un site qui ne sait pas signer (plus faible, à éviter), clé d'adresse affichée une fois :")
        print(f"  POST {created.path}?key={created.key}")
    print("Secret de signature, affiché une seule fois :")
    print(created.secret)
