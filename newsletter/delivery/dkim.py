"""DKIM signing in process (RFC 6376; Ed25519 per RFC 8463), on the hot path.

A :class:`DkimSigner` attached to a :class:`~newsletter.delivery.assemble.CompiledMessage`
(``compiled.signer = signer``) makes :meth:`CompiledMessage.build` prepend one
``DKIM-Signature`` per key: RSA-2048 ``rsa-sha256`` and, optionally, a second
``ed25519-sha256`` signature.  Canonicalisation is relaxed/relaxed.  ``h=``
covers From twice (oversigned, so a second From cannot be added), To, Subject,
Date, Message-ID, MIME-Version, Content-Type, List-Id, List-Unsubscribe,
List-Unsubscribe-Post and Feedback-ID.

The work done once per compiled message is :mod:`.dkim_plan`; per recipient: ``.copy()``
the planned hash state, feed the canonical remainder with the slot values filled (one
C-level join, then one ``update``), canonicalise the four per-recipient headers (a plain
strip unless a value holds a tab, CR/LF or a double space), hash them with the
DKIM-Signature field, whose canonical form is precomputed around its two varying values
(t=, bh=), and sign the digest (RSASSA-PKCS1-v1_5 via ``Prehashed``; the key is loaded
once). The private-key operation dominates; everything else is kept small beside it.

A value that is not clean (a name with a double space, say) sends the lines that contain
it through the full line canonicaliser (:mod:`.dkim_canon`) instead, so the result is
always what an independent verifier computes. The tests check it with dkimpy's
``verify``.

Key management is :mod:`.dkim_keys` (``newsletter dkim keygen|record``).
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.core import clock
from newsletter.core.errors import ConfigError
from newsletter.delivery.dkim_canon import (
    UNFOLD,
    WSP_RUN,
    all_clean,
    canon_body,
    canon_header,
    canon_line,
    is_clean,
    split_header_block,
)
from newsletter.delivery.dkim_keys import load_private
from newsletter.delivery.dkim_plan import Plan, make_plan

if TYPE_CHECKING:  # pragma: no cover
    from newsletter.delivery.assemble import CompiledMessage

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "DkimKey",
    "DkimSettings",
    "DkimSigner",
    "load_signer",
]

#: Oversigned (RFC 6376 §8.15): each name once more than the message has it, so
#: that a copy of the header added after signing (a second Subject, a Reply-To,
#: a List-Unsubscribe pointing elsewhere) breaks the signature.
OVERSIGNED: tuple[str, ...] = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
)
#: h= of every signature.
DEFAULT_SIGNED_HEADERS: tuple[str, ...] = (
    *(name for name in OVERSIGNED for _ in range(2)),
    "feedback-id",
)

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

_PKCS1 = padding.PKCS1v15()
_PREHASHED_SHA256 = Prehashed(hashes.SHA256())


_ts_cache: tuple[int, bytes] = (0, b"0")


def _timestamp() -> bytes:
    """t= value: the current Unix time, formatted once per second."""
    global _ts_cache
    now = int(clock.timestamp())
    if _ts_cache[0] != now:
        _ts_cache = (now, str(now).encode())
    return _ts_cache[1]


# -- keys ------------------------------------------------------------------------


@dataclass(slots=True)
class DkimKey:
    selector: str
    algorithm: Algorithm
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def from_pem(cls, selector: str, pem: bytes) -> DkimKey:
        key = load_private(pem)
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 1024:
                raise ConfigError("DKIM RSA keys must be at least 1024 bits (use 2048)")
            return cls(selector, "rsa-sha256", key)
        return cls(selector, "ed25519-sha256", key)

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign the SHA-256 digest of the canonical header data.

        RSA: RSASSA-PKCS1-v1_5 over the precomputed digest (``Prehashed``: OpenSSL
        wraps it in the SHA-256 DigestInfo; nothing is hashed twice).  Ed25519:
        PureEdDSA over the 32-byte digest (RFC 8463).
        """
        key = self.key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(digest, _PKCS1, _PREHASHED_SHA256)
        return key.sign(digest)


# -- the signer ------------------------------------------------------------------


def _fold_b64(sig: bytes) -> bytes:
    b = binascii.b2a_base64(sig, newline=False)
    return b"\r\n\t".join([b[i : i + 72] for i in range(0, len(b), 72)])


def _fold_h(names: Iterable[str]) -> str:
    out, line = [], "h="
    for n in names:
        piece = n if line == "h=" else ":" + n
        if len(line) + len(piece) > 70:
            out.append(line + ":")
            line = n
        else:
            line += piece
    out.append(line)
    return "\r\n\t".join(out)


def _canon_tag_text(raw: bytes) -> bytes:
    """Relaxed canonical form of a piece of the DKIM-Signature value (no strip)."""
    return WSP_RUN.sub(b" ", UNFOLD.sub(b"", raw))


def _rcpt_field(name: str, value: str) -> bytes:
    """Relaxed canonical ``name:value\r\n`` of a per-recipient field (``name`` is lower case)."""
    if "\n" in value or "\r" in value or "\t" in value or "  " in value:
        return canon_header(name.encode(), value.encode())
    return (name + ":" + value.strip(" ") + "\r\n").encode()


@dataclass(slots=True)
class _KeyForm:
    """One key's DKIM-Signature field, cut around the two values that change (t=, bh=).

    ``raw*`` are the bytes written; ``canon*`` their relaxed canonical form, which
    is what the header hash covers.  Each cut sits next to a digit or a base64
    character, so canonicalising the pieces separately equals canonicalising
    the whole value.
    """

    key: DkimKey
    raw_head: bytes  # "DKIM-Signature: v=1; ... s=sel;" (+ "\r\n\tt=" when timestamped)
    raw_mid: bytes  # (";" when timestamped) + "\r\n\th=...;\r\n\tbh="
    canon_head: bytes  # "dkim-signature:v=1; ... s=sel;" (+ " t=")
    canon_mid: bytes  # ("; " or " ") + "h=...; bh="


@dataclass
class DkimSigner:
    """Signs messages for one domain with one or more keys (RSA first, then Ed25519)."""

    domain: str
    keys: list[DkimKey]
    signed_headers: tuple[str, ...] = DEFAULT_SIGNED_HEADERS
    #: Include t= (signature timestamp).
    timestamp: bool = True
    _forms: list[_KeyForm] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("a DKIM signer needs at least one key")
        self.signed_headers = tuple(h.lower() for h in self.signed_headers)
        h_tag = _fold_h(self.signed_headers).encode()
        self._forms = []
        for k in self.keys:
            head = f"v=1; a={k.algorithm}; c=relaxed/relaxed; d={self.domain}; s={k.selector};"
            head_b = head.encode() + (b"\r\n\tt=" if self.timestamp else b"")
            mid = (b";" if self.timestamp else b"") + b"\r\n\t" + h_tag + b";\r\n\tbh="
            self._forms.append(
                _KeyForm(
                    k,
                    b"DKIM-Signature: " + head_b,
                    mid,
                    b"dkim-signature:" + _canon_tag_text(head_b).strip(b" \t"),
                    _canon_tag_text(mid),
                )
            )

    @classmethod
    def from_pem(
        cls,
        domain: str,
        selector: str,
        pem: bytes,
        *,
        ed25519_selector: str | None = None,
        ed25519_pem: bytes | None = None,
        **kw: Any,
    ) -> DkimSigner:
        keys = [DkimKey.from_pem(selector, pem)]
        if ed25519_pem is not None:
            keys.append(DkimKey.from_pem(ed25519_selector or selector, ed25519_pem))
        return cls(domain, keys, **kw)

    def _fields(self, data: bytes, body_digest: bytes) -> bytes:
        """The DKIM-Signature field(s) for canonical header data ``data`` and a body hash."""
        bh = binascii.b2a_base64(body_digest, newline=False)
        ts = _timestamp() if self.timestamp else b""
        out: list[bytes] = []
        for f in self._forms:
            digest = hashlib.sha256(
                b"".join((data, f.canon_head, ts, f.canon_mid, bh, b"; b="))
            ).digest()
            sig = _fold_b64(f.key.sign_digest(digest))
            out.append(b"".join((f.raw_head, ts, f.raw_mid, bh, b";\r\n\tb=", sig, b"\r\n")))
        return b"".join(out)

    # The hot path ---------------------------------------------------------------

    def sign(
        self,
        compiled: CompiledMessage,
        rcpt_headers: dict[str, str],
        values: dict[str, bytes],
    ) -> bytes:
        """DKIM-Signature field(s), CRLF-terminated, for one recipient's build.

        ``rcpt_headers`` maps the lower-case names of the per-recipient fields to
        their values as written; ``values`` maps slot names ("html:TOKEN") to bytes.
        """
        plan = compiled.dkim_plan
        if plan is None or plan[0] is not self:
            plan = (self, make_plan(compiled.chunks, self.signed_headers))
            compiled.dkim_plan = plan
        p: Plan = plan[1]
        data = b"".join(
            [
                piece if isinstance(piece, bytes) else _rcpt_field(piece, rcpt_headers[piece])
                for piece in p.header_template
            ]
        )
        return self._fields(data, self._body_hash(compiled, p, values))

    def _body_hash(self, compiled: CompiledMessage, p: Plan, values: dict[str, bytes]) -> bytes:
        if p.fallback:
            return _full_body_hash(compiled.chunks, values)
        h = p.prefix.copy()
        if all_clean(p.slot_values(values)):
            h.update(p.flat.join(values))
            return h.digest()
        clean = {s: is_clean(values[s]) for s in p.slots}
        buf: list[bytes] = []
        for r in p.rest:
            if isinstance(r, bytes):
                buf.append(r)
            elif all(clean[s] for s in r.slots):
                buf.extend(values[c] if isinstance(c, str) else c for c in r.canon)
            else:
                line = b"".join(values[c] if isinstance(c, str) else c for c in r.raw)
                if b"\r" in line or b"\n" in line:  # a value broke the line structure
                    return _full_body_hash(compiled.chunks, values)
                buf.append(canon_line(line) + b"\r\n")
        h.update(b"".join(buf))
        return h.digest()

    # The general path -------------------------------------------------------------

    def sign_message(self, message: bytes) -> bytes:
        """Sign any complete CRLF message; existing DKIM-Signature fields are replaced.

        Slow (canonicalises everything); for messages re-encoded after build,
        e.g. by :func:`~newsletter.delivery.assemble.to_base64` for a relay
        without 8BITMIME, whose body no longer matches the first signature.
        """
        block, sep, body = message.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("message has no header/body separator")
        fields = [f for f in split_header_block(block) if f[0].strip().lower() != b"dkim-signature"]
        stripped = b"".join(n + b":" + v + b"\r\n" for n, v in fields)
        pool: dict[bytes, list[bytes]] = {}
        for n, v in fields:
            pool.setdefault(n.strip().lower(), []).append(canon_header(n, v))
        data = b"".join(pool[n.encode()].pop() for n in self.signed_headers if pool.get(n.encode()))
        sigs = self._fields(data, hashlib.sha256(canon_body(body)).digest())
        return sigs + stripped + b"\r\n" + body


def _full_body_hash(chunks: Sequence[bytes | str], values: dict[str, bytes]) -> bytes:
    raw = b"".join(c if isinstance(c, bytes) else values[c] for c in chunks)
    body = raw.partition(b"\r\n\r\n")[2]
    return hashlib.sha256(canon_body(body)).digest()


# -- configuration -----------------------------------------------------------------


class DkimSettings(BaseSettings):
    """``NEWSLETTER_DKIM_*``: where the signing keys are.  No key file: no signing."""

    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_DKIM_", extra="ignore")

    domain: str = ""
    selector: str = ""
    key_file: Path | None = None
    ed25519_selector: str = ""
    ed25519_key_file: Path | None = None


def load_signer(settings: DkimSettings | None = None) -> DkimSigner | None:
    """The signer configured by ``NEWSLETTER_DKIM_*``, or None when DKIM is not set up."""
    cfg = settings or DkimSettings()
    if cfg.key_file is None:
        return None
    if not cfg.domain or not cfg.selector:
        raise ConfigError("NEWSLETTER_DKIM_DOMAIN and NEWSLETTER_DKIM_SELECTOR must be set")
    ed_pem = cfg.ed25519_key_file.read_bytes() if cfg.ed25519_key_file else None
    return DkimSigner.from_pem(
        cfg.domain,
        cfg.selector,
        cfg.key_file.read_bytes(),
        ed25519_selector=cfg.ed25519_selector or None,
        ed25519_pem=ed_pem,
    )


def sign_system_mail(message: bytes) -> bytes:
    """DKIM-sign a system message (confirmation, alert) when DKIM is configured.

    ``message`` must use CRLF line ends; it is returned unchanged without a key.
    """
    signer = load_signer()
    return message if signer is None else signer.sign_message(message)
