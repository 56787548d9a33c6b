"""Connect to what was checked: an httpx transport that resolves a host once, checks
every address it got with the URL policy, and connects to that address.

Checking a name and then letting the HTTP client resolve it again leaves a window
(DNS rebinding): the name may answer a public address to the check and 127.0.0.1, a
private address or a cloud's metadata service to the connection. :class:`PinnedTransport`
closes it. For each request (each redirect hop too) it resolves the host once, refuses
the request unless every address is allowed (public, unless ``allow_private``), and
sends it to the first checked address, with the original ``Host`` header and, for
https, the original name as SNI and for the certificate check.

The resolver is :func:`resolve` unless a caller passes one; tests replace it with
:func:`set_resolver` (as they set the clock), to play a name that changes its answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httpx

__all__ = [
    "AddressRefused",
    "AsyncPinnedTransport",
    "PinnedTransport",
    "Resolver",
    "is_public_address",
    "never_reached",
    "pinned_client",
    "resolve",
    "set_resolver",
]

#: (host, port) → the addresses it resolves to (IP strings); empty when it does not resolve
Resolver = Callable[[str, int], list[str]]


def _system(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out: list[str] = []
    for info in infos:
        ip = str(info[4][0]).split("%", 1)[0]
        if ip not in out:
            out.append(ip)
    return out


_resolver: Resolver = _system
_taken_as_public: frozenset[str] = frozenset()


def set_resolver(fn: Resolver | None, *, public: frozenset[str] = frozenset()) -> None:
    """Use ``fn`` to resolve names everywhere (tests); ``None`` restores the system's.

    ``public`` lists addresses to take as public while ``fn`` is set: a test's server
    listens on loopback, and plays a public host on one loopback address (127.0.0.2)
    while the others keep their real classification."""
    global _resolver, _taken_as_public
    _resolver = fn or _system
    _taken_as_public = public if fn is not None else frozenset()


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to now (an IP literal is its own answer)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return _resolver(host, port)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _embedded(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), if any: a gateway on
    the way delivers to that one, so it is the one to judge."""
    if isinstance(addr, ipaddress.IPv4Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _SIX_TO_FOUR:
        return addr.sixtofour
    return None


def is_public_address(ip: str) -> bool:
    """A global address: not loopback, private, link-local, reserved or documentation
    (an IPv6 address that carries an IPv4 one is judged by that one)."""
    if ip in _taken_as_public:
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    inner = _embedded(addr)
    if inner is not None:
        return str(inner) in _taken_as_public or inner.is_global
    return addr.is_global


def never_reached(ip: str) -> bool:
    """Addresses refused even where private ones are allowed: link-local (the cloud
    metadata service at 169.254.169.254 among them), multicast and unspecified."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True
    addr = _embedded(addr) or addr
    return addr.is_link_local or addr.is_multicast or addr.is_unspecified


class AddressRefused(httpx.ConnectError):
    """The host does not resolve, or resolves to an address the policy refuses."""

    def __init__(self, message: str, *, request: httpx.Request, resolved: bool) -> None:
        super().__init__(message, request=request)
        self.resolved = resolved


def _pin(
    request: httpx.Request,
    addresses: list[str],
    allow_private: bool,
    connected: list[tuple[str, str]],
) -> None:
    """Refuse ``request`` unless every address its host resolved to is allowed, then point
    it at the first one (keeping the name for ``Host``, SNI and the certificate check)."""
    url = request.url
    host = url.host
    if not addresses:
        raise AddressRefused(
            f"{host} 无法解析 / {host} does not resolve", request=request, resolved=False
        )
    if any(never_reached(a) for a in addresses) or (
        not allow_private and not all(is_public_address(a) for a in addresses)
    ):
        raise AddressRefused(
            f"{host} 解析到非公网地址，已拒绝 / {host} resolves to a non-public address; refused",
            request=request,
            resolved=True,
        )
    address = addresses[0]
    connected.append((host, address))
    if address != host:
        if "host" not in request.headers:
            request.headers["Host"] = url.netloc.decode("ascii")
        request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = url.copy_with(host=address)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class _Pinning:
    """What both transports keep: whether private addresses are allowed, the resolver, and
    the (host, address) of every request sent, in order (for logs and tests)."""

    def __init__(
        self, *, allow_private: bool = False, resolver: Resolver | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.allow_private = allow_private
        self.resolver = resolver
        self.connected: list[tuple[str, str]] = []

    def _resolve(self, request: httpx.Request) -> list[str]:
        return (self.resolver or resolve)(request.url.host, _port(request.url))


class PinnedTransport(_Pinning, httpx.HTTPTransport):
    """An :class:`httpx.HTTPTransport` that connects only to addresses it checked."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _pin(request, self._resolve(request), self.allow_private, self.connected)
        return super().handle_request(request)


class AsyncPinnedTransport(_Pinning, httpx.AsyncHTTPTransport):
    """The same for an :class:`httpx.AsyncClient` (the name is resolved in a worker thread).

    Clients that are handed this transport and closed after each use (Authlib's) do not
    close it: it outlives them, as one pool."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import anyio.to_thread

        addresses = await anyio.to_thread.run_sync(self._resolve, request)
        _pin(request, addresses, self.allow_private, self.connected)
        return await super().handle_async_request(request)

    async def __aexit__(self, *exc: object) -> None:
        return None


def pinned_client(
    *, allow_private: bool = False, resolver: Resolver | None = None, **kwargs: Any
) -> httpx.Client:
    """An :class:`httpx.Client` over a :class:`PinnedTransport` (no environment proxies)."""
    transport = PinnedTransport(allow_private=allow_private, resolver=resolver)
    return httpx.Client(transport=transport, **kwargs)
