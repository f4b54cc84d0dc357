"""Communes and their API keys: the operator's use cases and the authorizer's lookup."""

from __future__ import annotations

from dataclasses import dataclass

from crieur import apikeys
from crieur.errors import Conflict, InvalidInput, NotFound
from crieur.models import Commune, departement_of
from crieur.security import NewApiKey, hash_api_key, new_api_key
from crieur.store import AlreadyExists, Store


@dataclass
class CommuneService:
    store: Store

    def create_commune(self, insee: str, name: str) -> Commune:
        insee = insee.strip().upper()
        try:
            commune = Commune(insee=insee, name=name, departement=departement_of(insee))
        except ValueError as invalid:
            raise InvalidInput([("insee", str(invalid))]) from invalid
        try:
            self.store.create_commune(commune)
        except AlreadyExists as exists:
            raise Conflict(f"La commune {insee} existe déjà.") from exists
        return commune

    def create_key(self, insee: str, chosen: str | None = None) -> NewApiKey:
        """A new key for the commune; the key itself is returned once and only its SHA-256 is stored."""
        if self.store.get_commune(insee) is None:
            raise NotFound(f"Aucune commune {insee} : créez-la d'abord.")
        key = new_api_key(chosen)
        self.store.add_api_key(insee, key.key_id, key.key_hash)
        return key

    def revoke_key(self, insee: str, key_or_id: str) -> None:
        """Revokes by key id (as `key create` printed it) or by the key itself."""
        key_id = key_or_id if len(key_or_id) == 16 and key_or_id.isalnum() else hash_api_key(key_or_id)[:16]
        if not self.store.revoke_api_key(insee, key_id):
            raise NotFound(f"Aucune clé {key_id} pour la commune {insee}.")

    def commune_for_authorization(self, header: str | None) -> str | None:
        """The commune a `Bearer <key>` header belongs to, or None for a missing, unknown or revoked key."""
        return apikeys.commune_for_authorization(self.store.table_name, header)
