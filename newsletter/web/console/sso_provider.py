"""The console's OpenID Connect provider as Authlib sees it: one client per configuration,
the discovery document (checked to name the configured issuer), and ID-token checks that
read the product's clock.

Every request to the provider (discovery, token, keys) goes through a pinned transport
(``core.safety.pinned``): each name is resolved once, checked, and connected to as
checked. A provider on a private network is allowed when its issuer itself resolves to a
private address (an intranet IdP); a public issuer's discovery document cannot steer the
console to a private or loopback address."""

from __future__ import annotations

import hashlib
from typing import Any

from newsletter.core import clock
from newsletter.core.caches import process_cache
from newsletter.core.config import get_settings
from newsletter.core.safety.pinned import AsyncPinnedTransport, is_public_address, resolve
from newsletter.web.console.oidc_client import OAuth, OAuthError

__all__ = ["client", "id_token_claims", "metadata"]

_clients: dict[tuple[str, str, str], Any] = process_cache({})


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


def _issuer_is_private(issuer: str) -> bool | None:
    """Whether the issuer's host resolves to a non-public address now (None: it does not
    resolve, so nothing is decided yet)."""
    import httpx

    url = httpx.URL(issuer)
    addresses = resolve(url.host, url.port or (443 if url.scheme == "https" else 80))
    if not addresses:
        return None
    return not all(is_public_address(a) for a in addresses)


def client() -> Any:
    cfg = get_settings()
    secret = cfg.oidc_client_secret.get_secret_value()
    key = (cfg.oidc_issuer, cfg.oidc_client_id, hashlib.sha256(secret.encode()).hexdigest())
    found = _clients.get(key)
    if found is None:
        private = _issuer_is_private(cfg.oidc_issuer)
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
                "transport": AsyncPinnedTransport(allow_private=bool(private)),
            },
        )
        found = oauth.create_client("console")
        if private is None:  # the issuer did not resolve: decide again next time
            return found
        _clients.clear()
        _clients[key] = found
    return found


async def metadata() -> dict[str, Any]:
    meta: dict[str, Any] = await client().load_server_metadata()
    # OpenID Connect Discovery §4.3: the document must name the configured issuer.
    if meta.get("issuer", "").rstrip("/") != get_settings().oidc_issuer.rstrip("/"):
        raise OAuthError(description="issuer mismatch")
    return meta
