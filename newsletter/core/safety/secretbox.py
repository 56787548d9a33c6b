"""Small secrets kept in the database, encrypted with the secret key (AES-256-GCM).

A TOTP secret or a webhook endpoint's signing secret must be readable by the product,
so it cannot be hashed; encrypting it means a copy of the database alone does not give
it away. The key is derived from the current secret key with HKDF (one key per
``purpose``); opening tries the old keys too, so a key rotation keeps working.
The stored form is ``v1.<base64url(nonce + ciphertext)>``.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from newsletter.core.config import get_settings

__all__ = ["BoxError", "unbox_text", "box_text"]

_PREFIX = "v1."


class BoxError(ValueError):
    """The stored value does not open with any of the keys (or is not encrypted)."""


def _key(secret: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"newsletter-secretbox", info=purpose.encode()
    ).derive(secret)


def box_text(value: str, purpose: str) -> str:
    nonce = os.urandom(12)
    key = _key(get_settings().secrets()[0], purpose)
    box = AESGCM(key).encrypt(nonce, value.encode(), purpose.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + box).decode()


def unbox_text(stored: str, purpose: str) -> str:
    if not stored.startswith(_PREFIX):
        raise BoxError("not an encrypted value / 不是加密值")
    try:
        raw = base64.urlsafe_b64decode(stored[len(_PREFIX) :].encode())
    except ValueError as exc:
        raise BoxError("not an encrypted value / 不是加密值") from exc
    nonce, box = raw[:12], raw[12:]
    for secret in get_settings().secrets():
        try:
            return AESGCM(_key(secret, purpose)).decrypt(nonce, box, purpose.encode()).decode()
        except InvalidTag:
            continue
    raise BoxError(
        "加密值无法用当前或旧密钥打开 / the encrypted value opens with no current or old key"
    )
