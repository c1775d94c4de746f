"""Encryption at rest for secrets (Open API tokens, adapter tokens, authenticator keys).

Values are encrypted with AES-256-GCM (``cryptography``'s AEAD) under keys derived from
``settings.TOKEN_ENCRYPTION_KEYS`` (newest first): the newest key encrypts, every listed key decrypts, and
``rotate_token_keys`` re-encrypts with the newest one. A value is URL-safe base64, unpadded, of a version
byte, a random 96-bit nonce and the ciphertext with its tag; the version byte is authenticated with it. Each
configured key (a Fernet key: 32 random bytes) is not used as it is but through HKDF-SHA256 with a label of
this format, so the cipher's keys are apart from the Fernet keys the same settings also drive.

Values written with Fernet (the format before this one) still decrypt with any configured key, and
``rotate_token_keys`` moves them to this format. Fernet stays for values that must expire (``seal``): its
tokens carry their time.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

# The first byte of every value of this format, authenticated with it; a Fernet value's first byte is 0x80.
_VERSION = b"\x01"
_FERNET_HEADER = b"\x80"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_LABEL = b"clientarea at-rest AES-256-GCM v1"


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


@lru_cache(maxsize=4)
def _ciphers(keys: tuple[str, ...]) -> tuple[AESGCM, ...]:
    """One AES-256-GCM cipher per configured key, newest first (each keeps its key schedule between calls)."""
    _multifernet(keys)  # the same checks and errors for a missing or malformed key
    return tuple(
        AESGCM(HKDF(hashes.SHA256(), 32, None, _KEY_LABEL).derive(base64.urlsafe_b64decode(key)))
        for key in keys
    )


def _keys() -> tuple[str, ...]:
    return tuple(settings.TOKEN_ENCRYPTION_KEYS)


def fernet() -> MultiFernet:
    return _multifernet(_keys())


def encrypt(value: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _ciphers(_keys())[0].encrypt(nonce, value.encode(), _VERSION)
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode()


def _unpack(token: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("A stored secret is not in a known format.") from None


def _open(raw: bytes, ciphers: tuple[AESGCM, ...]) -> str:
    if len(raw) < 1 + _NONCE_BYTES + _TAG_BYTES or raw[:1] != _VERSION:
        raise DecryptionError("A stored secret is not in a known format.")
    nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
    for cipher in ciphers:
        try:
            return cipher.decrypt(nonce, sealed, _VERSION).decode()
        except InvalidTag:
            continue
    raise DecryptionError("A stored secret cannot be decrypted with the configured keys.")


def seal(value: str) -> str:
    """Encrypt a value that must expire (a task message's secret): a Fernet token, which carries its time."""
    return fernet().encrypt(value.encode()).decode()


def unseal(token: str, *, ttl: int) -> str | None:
    """The value ``seal`` sealed, or None once it is older than ``ttl`` seconds or does not decrypt."""
    try:
        return fernet().decrypt(token.encode(), ttl=ttl).decode()
    except InvalidToken:
        return None


def decrypt(token: str) -> str:
    raw = _unpack(token)
    if raw[:1] != _FERNET_HEADER:
        return _open(raw, _ciphers(_keys()))
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("A stored secret cannot be decrypted with the configured keys.") from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the newest key (and in this format, if it was written with Fernet)."""
    return encrypt(decrypt(token))


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
    try:
        _open(_unpack(token), _ciphers(_keys())[:1])
    except DecryptionError:
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
