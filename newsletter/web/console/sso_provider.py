"""The console's OpenID Connect provider as Authlib sees it: one client per configuration,
the discovery document (checked to name the configured issuer), and ID-token checks that
read the product's clock.

Every request to the provider (discovery, token, keys) goes through a pinned transport
(``core.safety.pinned``): each name is resolved once, checked, and connected to as
checked. Every address must be public unless ``NEWSLETTER_OIDC_ALLOW_PRIVATE`` says the
provider lives on a private network (an intranet IdP): a setting, never what a DNS answer
says, so nobody who controls the issuer's name can open the console's network to the
provider's discovery document. Link-local addresses (a cloud's metadata service) are
refused either way."""

from __future__ import annotations

import hashlib
from typing import Any

from newsletter.core import clock
from newsletter.core.caches import process_cache
from newsletter.core.config import get_settings
from newsletter.core.safety.pinned import AsyncPinnedTransport
from newsletter.web.console.oidc_client import OAuth, OAuthError

__all__ = ["client", "id_token_claims", "metadata"]

_clients: dict[tuple[str, ...], Any] = process_cache({})


def id_token_claims(token: dict[str, Any]) -> Any:
    """Authlib's ID-token checks (signature, issuer, audience, nonce, at_hash), with expiry and
    issue time read from the product's one clock rather than the process's wall clock."""
    from authlib.oidc.core import CodeIDToken

    access_token = token.get("access_token")

    class ProductClockIDToken(CodeIDToken):  # type: ignore[misc]
        def __init__(
            self,
            claims: Any,
            header: Any,
            options: Any = None,
            params: dict[str, Any] | None = None,
        ) -> None:
            params = dict(params or {})
            if access_token:
                params["access_token"] = access_token
            super().__init__(claims, header, options, params)

        def validate(self, now: Any = None, leeway: int = 0) -> None:
            super().validate(now=int(clock.timestamp()), leeway=leeway)

    return ProductClockIDToken


def client() -> Any:
    cfg = get_settings()
    secret = cfg.oidc_client_secret.get_secret_value()
    key = (
        cfg.oidc_issuer,
        cfg.oidc_client_id,
        hashlib.sha256(secret.encode()).hexdigest(),
        str(cfg.oidc_allow_private),
    )
    found = _clients.get(key)
    if found is None:
        oauth = OAuth()
        oauth.register(
            "console",
            client_id=cfg.oidc_client_id,
            client_secret=secret,
            server_metadata_url=cfg.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": cfg.oidc_scopes,
                "code_challenge_method": "S256",
                "timeout": 10,
                "transport": AsyncPinnedTransport(allow_private=cfg.oidc_allow_private),
            },
        )
        found = oauth.create_client("console")
        _clients.clear()
        _clients[key] = found
    return found


async def metadata() -> dict[str, Any]:
    meta: dict[str, Any] = await client().load_server_metadata()
    # OpenID Connect Discovery §4.3: the document must name the configured issuer.
    if meta.get("issuer", "").rstrip("/") != get_settings().oidc_issuer.rstrip("/"):
        raise OAuthError(description="issuer mismatch")
    return meta
