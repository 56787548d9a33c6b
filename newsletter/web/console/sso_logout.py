"""OpenID Connect Back-Channel Logout 1.0: verifying the provider's signed logout token.

A token is accepted once (its ``jti`` remembered, in Redis when there is one), within
five minutes of its issue, for this client, naming the back-channel event and a subject,
and never with a nonce. Anyone can post here, so the provider's keys are fetched again
only for a key id we have not seen, and at most once a minute.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from newsletter.core import clock
from newsletter.core.caches import process_cache
from newsletter.core.config import get_settings
from newsletter.web.console.oidc_client import OAuthError
from newsletter.web.console.sso_provider import client, metadata

__all__ = ["logout_subject"]

log = logging.getLogger("newsletter.web.console.sso")
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

KEYS_REFETCH_SECONDS = 60
#: How long a logout token's jti is remembered: longer than a token is accepted (iat ± 300 s).
JTI_SECONDS = 660

_keys_fetched_at: dict[str, float] = process_cache({})  # issuer -> last fetched again
_seen_jti: dict[str, float] = process_cache({})  # key -> until when (no Redis: this process)


def _first_use(issuer: str, jti: str) -> bool:
    """True the first time this issuer's logout token ``jti`` is seen (RFC: a replayed
    logout token must not log the user out again, e.g. after they signed back in).
    Remembered in Redis when there is one, so every web process agrees."""
    cfg = get_settings()
    key = hashlib.sha256(f"{issuer}\0{jti}".encode()).hexdigest()
    if cfg.redis_url:
        try:
            from newsletter.core.redis import redis_client

            return bool(
                redis_client().set(f"{cfg.redis_prefix}sso-jti:{key}", 1, nx=True, ex=JTI_SECONDS)
            )
        except Exception as exc:  # Redis down: remember here rather than accept replays
            log.warning("logout token ids kept in this process: %s", exc.__class__.__name__)
    now = clock.timestamp()
    for k in [k for k, until in _seen_jti.items() if until < now]:
        del _seen_jti[k]
    if key in _seen_jti:
        return False
    _seen_jti[key] = now + JTI_SECONDS
    return True


def _refetch_keys(issuer: str, token: str, keys: Any) -> bool:
    """Should a logout token that failed against the cached keys send us to the provider
    for its keys again? Only when it names a key id the cached set lacks, once a minute."""
    try:
        head = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
    except (ValueError, TypeError):
        return False
    kid = head.get("kid") if isinstance(head, dict) else None
    listed = keys.get("keys") if isinstance(keys, dict) else None
    known = {k.get("kid") for k in listed or [] if isinstance(k, dict)}
    if not isinstance(kid, str) or kid in known:
        return False
    now = time.monotonic()
    if now - _keys_fetched_at.get(issuer, float("-inf")) < KEYS_REFETCH_SECONDS:
        return False
    _keys_fetched_at[issuer] = now
    return True


async def logout_subject(logout_token: str) -> tuple[str, str] | None:
    """``(issuer, subject)`` of the user a valid, first-seen logout token names; None
    for anything else (logged, never raised)."""
    cfg = get_settings()
    try:
        meta = await metadata()
        oidc = client()
        algs = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = [a for a in algs if a != "none"]
        registry = JWSRegistry(algorithms=algs)
        keys = await oidc.fetch_jwk_set()
        try:
            tok = jwt.decode(logout_token, KeySet.import_key_set(keys), registry=registry)
        except JoseError:
            if not _refetch_keys(str(meta["issuer"]), logout_token, keys):
                raise
            tok = jwt.decode(
                logout_token,
                KeySet.import_key_set(await oidc.fetch_jwk_set(force=True)),
                registry=registry,
            )
    except (OAuthError, JoseError, OSError, ValueError, KeyError) as exc:
        log.warning("back-channel logout refused: %s", exc.__class__.__name__)
        return None
    claims = tok.claims
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    events = claims.get("events")
    now = clock.timestamp()
    iat = claims.get("iat")
    ok = (
        str(claims.get("iss", "")).rstrip("/") == str(meta["issuer"]).rstrip("/")
        and cfg.oidc_client_id in auds
        and isinstance(events, dict)
        and BACKCHANNEL_EVENT in events
        and "nonce" not in claims
        and isinstance(iat, (int, float))
        and abs(now - iat) < 300
        and (not isinstance(claims.get("exp"), (int, float)) or claims["exp"] > now - 60)
        and isinstance(claims.get("sub"), str)
        and isinstance(claims.get("jti"), str)
        and 0 < len(claims["jti"]) <= 255
    )
    if not ok:
        log.warning("back-channel logout refused: claims %s", sorted(claims))
        return None
    if not _first_use(str(meta["issuer"]), claims["jti"]):
        log.warning("back-channel logout refused: a logout token used again")
        return None
    return str(meta["issuer"]), claims["sub"]
