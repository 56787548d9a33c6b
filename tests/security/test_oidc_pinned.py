"""OpenID Connect requests connect to what was checked (issue 29): every request to the
provider resolves its name once, checks every address and connects to that address; a
public issuer's discovery document cannot send the console to a private address, and a
name that answers differently to a second lookup gains nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from newsletter.core.caches import reset_all
from newsletter.core.config import get_settings, reset_settings
from newsletter.core.safety.pinned import AddressRefused, set_resolver
from newsletter.web.console import sso_provider


class _Provider(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []
    doc: dict[str, Any] = {}

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        # the address the client connected to (this end of the connection)
        type(self).seen.append((self.connection.getsockname()[0], self.path))
        body = json.dumps(type(self).doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[int]:
    """One server on loopback; 127.0.0.2 plays the provider's public address."""
    srv = ThreadingHTTPServer(("0.0.0.0", 0), _Provider)
    port = srv.server_address[1]
    _Provider.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    before = get_settings()
    yield port
    srv.shutdown()
    set_resolver(None)
    reset_settings(before)
    reset_all()


def _configure(
    port: int, answers: dict[str, list[list[str]]], *, allow_private: bool = False
) -> None:
    """The issuer ``http://idp.example:port``; each name answers its lookups in turn (the
    last answer repeats)."""
    calls: dict[str, int] = {}

    def resolver(host: str, _port: int) -> list[str]:
        seq = answers.get(host, [[]])
        i = calls.get(host, 0)
        calls[host] = i + 1
        return seq[min(i, len(seq) - 1)]

    set_resolver(resolver, public=frozenset({"127.0.0.2"}))
    reset_settings(
        get_settings().model_copy(
            update={
                "oidc_issuer": f"http://idp.example:{port}",
                "oidc_client_id": "newsletter",
                "oidc_client_secret": SecretStr("s" * 40),
                "oidc_allow_private": allow_private,
            }
        )
    )
    reset_all()
    _Provider.doc = {
        "issuer": f"http://idp.example:{port}",
        "authorization_endpoint": f"http://idp.example:{port}/auth",
        "token_endpoint": f"http://inner.example:{port}/token",
        "jwks_uri": f"http://idp.example:{port}/jwks",
    }


def test_a_public_issuer_is_reached_at_the_checked_address_and_cannot_point_inside(
    provider: int,
) -> None:
    _configure(provider, {"idp.example": [["127.0.0.2"]], "inner.example": [["127.0.0.1"]]})
    meta = asyncio.run(sso_provider.metadata())
    assert meta["issuer"] == f"http://idp.example:{provider}"
    assert _Provider.seen == [("127.0.0.2", "/.well-known/openid-configuration")]
    # the document names a token endpoint on a private address: refused, never connected
    with pytest.raises(AddressRefused):
        asyncio.run(sso_provider.client().fetch_access_token(code="c", redirect_uri="http://x/cb"))
    assert len(_Provider.seen) == 1


def test_a_name_that_changes_its_answer_is_refused_not_followed(provider: int) -> None:
    """Each request resolves once and connects to what it checked: when the name turns to
    a loopback address, the next request is refused, never sent there."""
    _configure(provider, {"idp.example": [["127.0.0.2"], ["127.0.0.1"]]})
    asyncio.run(sso_provider.metadata())
    reset_all()  # a new client: discovery again
    with pytest.raises(AddressRefused):
        asyncio.run(sso_provider.metadata())
    assert _Provider.seen == [("127.0.0.2", "/.well-known/openid-configuration")]


def test_an_intranet_issuer_is_allowed_by_the_setting_only(provider: int) -> None:
    _configure(provider, {"idp.example": [["127.0.0.1"]], "inner.example": [["127.0.0.1"]]})
    with pytest.raises(AddressRefused):  # a private issuer without the setting
        asyncio.run(sso_provider.metadata())
    _configure(
        provider,
        {"idp.example": [["127.0.0.1"]], "inner.example": [["127.0.0.1"]]},
        allow_private=True,
    )
    meta = asyncio.run(sso_provider.metadata())
    assert meta["token_endpoint"].startswith("http://inner.example:")
    assert _Provider.seen == [("127.0.0.1", "/.well-known/openid-configuration")]


def test_one_private_answer_for_the_issuer_opens_nothing(provider: int) -> None:
    """Private at the first lookup, public after: the document's endpoints on private
    addresses stay refused (what may be reached is a setting, not a DNS answer)."""
    _configure(
        provider,
        {"idp.example": [["127.0.0.1"], ["127.0.0.2"]], "inner.example": [["127.0.0.1"]]},
    )
    with pytest.raises(AddressRefused):
        asyncio.run(sso_provider.metadata())
    asyncio.run(sso_provider.metadata())  # public now: discovery goes through
    with pytest.raises(AddressRefused):  # its token endpoint is on a private address
        asyncio.run(sso_provider.client().fetch_access_token(code="c", redirect_uri="http://x/cb"))
    assert [path for _a, path in _Provider.seen] == ["/.well-known/openid-configuration"]


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254", "0.0.0.0", "64:ff9b::a9fe:a9fe"],
)
def test_link_local_is_never_reached_even_inside(provider: int, address: str) -> None:
    _configure(provider, {"idp.example": [[address]]}, allow_private=True)
    with pytest.raises(AddressRefused):
        asyncio.run(sso_provider.metadata())


@pytest.mark.parametrize(
    ("address", "public"),
    [("64:ff9b::7f00:1", False), ("2002:7f00:1::", False), ("::ffff:10.0.0.1", False),
     ("64:ff9b::808:808", True), ("2002:808:808::", True)],
)  # fmt: skip
def test_an_ipv6_address_that_carries_an_ipv4_one_is_judged_by_it(
    address: str, public: bool
) -> None:
    from newsletter.core.safety.pinned import is_public_address

    assert is_public_address(address) is public
