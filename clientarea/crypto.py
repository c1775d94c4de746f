"""Encryption at rest for secrets (Open API tokens, adapter tokens).

Values are encrypted with MultiFernet over ``settings.TOKEN_ENCRYPTION_KEYS`` (newest first): the newest key
encrypts, every listed key decrypts, and ``rotate_token_keys`` re-encrypts with the newest one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEYS holds a key that is not a valid Fernet key."
        ) from exc


def fernet() -> MultiFernet:
    return _multifernet(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("A stored secret cannot be decrypted with the configured keys.") from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the newest key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("A stored secret cannot be decrypted with the configured keys.") from exc


class EncryptedTextField(models.TextField):
    """A text column whose value is encrypted at rest.

    It cannot be filtered on (Fernet output is randomised). A value that does not decrypt raises
    ``DecryptionError``; it never comes back as ciphertext or as an empty string.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return decrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt(str(value))

    def value_to_string(self, obj: models.Model) -> str:
        # Never serialise the plaintext (dumpdata, admin history).
        return ""


def is_encrypted_with_newest_key(token: str) -> bool:
    """Whether a stored value is already encrypted with the newest key (rotation can skip it)."""
    newest = _multifernet(tuple(settings.TOKEN_ENCRYPTION_KEYS))._fernets[0]
    try:
        newest.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every EncryptedTextField of every installed model."""
    from django.apps import apps

    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]
