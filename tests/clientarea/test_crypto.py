import pytest
from cryptography.fernet import Fernet
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
