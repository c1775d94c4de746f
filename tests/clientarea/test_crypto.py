import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.test import override_settings

from clientarea import crypto


def test_round_trip_and_randomised_ciphertext():
    a = crypto.encrypt("secret-value")
    b = crypto.encrypt("secret-value")
    assert a != b
    assert "secret-value" not in a
    assert crypto.decrypt(a) == "secret-value"


def test_wrong_key_raises():
    token = crypto.encrypt("secret-value")
    with (
        override_settings(TOKEN_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(crypto.DecryptionError),
    ):
        crypto.decrypt(token)


# --- the format: AES-256-GCM under a key derived from each configured key, Fernet values still read ---
def _aead(key: str):
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = base64.urlsafe_b64decode(key)
    return AESGCM(HKDF(hashes.SHA256(), 32, None, b"clientarea at-rest AES-256-GCM v1").derive(raw))


def _unpack(token: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_values_are_encrypted_with_aes_256_gcm_under_a_key_derived_from_the_newest_key(settings):
    newest, older = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [newest, older]
    token = crypto.encrypt("secret-value")
    raw = _unpack(token)
    header, nonce, sealed = raw[:1], raw[1:13], raw[13:]
    assert header == b"\x01"
    assert len(nonce) == 12
    assert len(sealed) == len("secret-value") + 16  # the GCM tag, no padding
    assert _aead(newest).decrypt(nonce, sealed, header) == b"secret-value"
    # The configured key itself is not the cipher's key (it is only the derivation's input).
    with pytest.raises(InvalidToken):
        Fernet(newest.encode()).decrypt(token.encode())
    # URL-safe as it is (the sign-up link carries one).
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_values_written_with_fernet_still_decrypt_with_any_configured_key(settings):
    older = Fernet.generate_key().decode()
    written_before = Fernet(older.encode()).encrypt(b"written-before").decode()
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), older]
    assert crypto.decrypt(written_before) == "written-before"
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(written_before)


def test_an_older_key_still_decrypts_and_rotation_moves_values_to_the_newest(settings):
    older, newest = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [older]
    token = crypto.encrypt("secret-value")
    fernet_token = Fernet(older.encode()).encrypt(b"secret-value").decode()
    settings.TOKEN_ENCRYPTION_KEYS = [newest, older]
    assert crypto.decrypt(token) == "secret-value"
    assert not crypto.is_encrypted_with_newest_key(token)
    # A Fernet value is not current even under the newest key: rotation moves it to the new format.
    settings.TOKEN_ENCRYPTION_KEYS = [older]
    assert not crypto.is_encrypted_with_newest_key(fernet_token)
    settings.TOKEN_ENCRYPTION_KEYS = [newest, older]
    for before in (token, fernet_token):
        rotated = crypto.rotate(before)
        assert crypto.is_encrypted_with_newest_key(rotated)
        assert (
            _aead(newest).decrypt(_unpack(rotated)[1:13], _unpack(rotated)[13:], b"\x01") == b"secret-value"
        )


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]),  # the tag
        lambda raw: raw[:20] + bytes([raw[20] ^ 1]) + raw[21:],  # the ciphertext
        lambda raw: raw[:5] + bytes([raw[5] ^ 1]) + raw[6:],  # the nonce
        lambda raw: b"\x02" + raw[1:],  # an unknown version
        lambda raw: raw[:12],  # cut short
        lambda raw: b"",
    ],
)
def test_a_damaged_value_raises_decryption_error(damage):
    import base64

    raw = _unpack(crypto.encrypt("secret-value"))
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(base64.urlsafe_b64encode(damage(raw)).decode().rstrip("="))


@pytest.mark.parametrize("text", ["", "not base64 at all!", "gAAAAA", "AQ", "%%%"])
def test_malformed_text_raises_decryption_error(text):
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(text)


def test_expiring_values_carry_their_time_and_expire(settings):
    import time

    sealed = crypto.seal("md5-of-the-password")
    assert "md5-of-the-password" not in sealed
    assert crypto.unseal(sealed, ttl=60) == "md5-of-the-password"
    old = crypto.fernet().encrypt_at_time(b"md5-of-the-password", int(time.time()) - 120).decode()
    assert crypto.unseal(old, ttl=60) is None
    assert crypto.unseal("tampered", ttl=60) is None
    # Sealed before an older key was replaced: still read while that key is listed.
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.TOKEN_ENCRYPTION_KEYS]
    assert crypto.unseal(sealed, ttl=60) == "md5-of-the-password"
