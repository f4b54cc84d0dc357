"""Channel credentials, encrypted with the stack's KMS key (ARCHITECTURE.md §3).

The encryption context {commune, channel} binds a ciphertext to its owner: copied onto another
commune's or another channel's item, it no longer decrypts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from crieur import aws


class CredentialVault(Protocol):
    def seal(self, commune: str, channel: str, credentials: dict[str, str]) -> bytes: ...

    def open(self, commune: str, channel: str, ciphertext: bytes) -> dict[str, str]: ...


class KmsVault:
    def __init__(self, key_id: str | None) -> None:
        self.key_id = key_id
        self._opened: dict[str, dict[str, str]] = {}

    def seal(self, commune: str, channel: str, credentials: dict[str, str]) -> bytes:
        if not self.key_id:
            raise RuntimeError("CRIEUR_KMS_KEY_ID is not set: this function may not encrypt credentials")
        return aws.kms().encrypt(
            KeyId=self.key_id,
            Plaintext=json.dumps(credentials).encode(),
            EncryptionContext={"commune": commune, "channel": channel},
        )["CiphertextBlob"]

    def open(self, commune: str, channel: str, ciphertext: bytes) -> dict[str, str]:
        """Decrypts once per container and ciphertext: a settings change produces a new ciphertext."""
        cache_key = hashlib.sha256(f"{commune}\0{channel}\0".encode() + ciphertext).hexdigest()
        if cache_key not in self._opened:
            plaintext = aws.kms().decrypt(
                CiphertextBlob=ciphertext, EncryptionContext={"commune": commune, "channel": channel}
            )["Plaintext"]
            self._opened[cache_key] = json.loads(plaintext)
        return self._opened[cache_key]
