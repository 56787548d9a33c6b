"""Render-time settings and the per-recipient slot conventions.

Guarantees:

* Every per-recipient value in rendered email HTML and text is one of the
  literal placeholders in :data:`SLOTS` (``%%TOKEN%%``, ``%%UNSUB%%``,
  ``%%NAME%%``).  The delivery engine replaces them byte for byte; it never
  re-renders.  :data:`SLOT_MAX_LEN` gives the largest encoded length (UTF-8
  bytes) the engine may substitute, so that budgets computed here stay true.
* All URLs the renderers emit for tracking, unsubscribing and the archive are
  built here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.content.model import Issue

__all__ = [
    "HANT",
    "SLOTS",
    "SLOT_MAX_LEN",
    "RenderContext",
    "archive_url",
    "slot_extra_bytes",
]

HANT = "zh-Hant"

#: Placeholder text for each slot name.
SLOTS: dict[str, str] = {
    "TOKEN": "%%TOKEN%%",  # signed delivery (tracking) token
    "UNSUB": "%%UNSUB%%",  # signed unsubscribe token
    "NAME": "%%NAME%%",  # subscriber's name, already HTML-escaped by the substituter
}

#: Largest substituted value per slot, in UTF-8 bytes (the substituter must truncate).
SLOT_MAX_LEN: dict[str, int] = {"TOKEN": 64, "UNSUB": 64, "NAME": 120}


def slot_extra_bytes(s: str) -> int:
    """Bytes that ``s`` grows by, at most, once every slot in it is substituted."""
    if "%%" not in s:
        return 0
    extra = 0
    for name, ph in SLOTS.items():
        n = s.count(ph)
        if n:
            extra += n * (SLOT_MAX_LEN[name] - len(ph))
    return extra


@dataclass
class RenderContext:
    """Everything a renderer needs besides the issue itself.

    ``base_url`` is the public origin of the web app (no trailing slash is
    kept).  Budgets: ``email_budget_bytes`` bounds the worst-case encoded HTML
    part; ``wechat_max_chars`` bounds ``len()`` of each WeChat article's HTML
    (every article is kept strictly below it).
    """

    base_url: str
    publication_name: str
    publication_slug: str
    postal_address: str
    sender_name: str
    track_opens: bool = True
    track_clicks: bool = True
    email_budget_bytes: int = 100_000
    wechat_max_chars: int = 20_000
    #: A QR code of the subscribe form under the WeChat headline's email-version line.
    wechat_qr: bool = False

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    def in_variant(self, variant: str) -> RenderContext:
        """This context with the publication's own words (name, sender, postal address)
        in ``variant``: a Traditional issue never signs off in Simplified."""
        if variant != HANT:
            return self
        from dataclasses import replace

        from newsletter.content.variants import convert_text

        return replace(
            self,
            publication_name=convert_text(self.publication_name),
            sender_name=convert_text(self.sender_name),
            postal_address=convert_text(self.postal_address),
        )

    # --- public URLs -----------------------------------------------------
    def archive_url(self, issue: Issue, variant: str | None = None) -> str:
        """The web-archive page of ``issue`` (``?v=zh-Hant`` for the Hant variant)."""
        v = issue.variant if variant is None else variant
        # an issue without a number yet (a preview) never gets a …/0 address
        key = issue.number if issue.number > 0 else f"draft-{issue.source_hash[:12] or 'preview'}"
        url = f"{self.base_url}/archive/{self.publication_slug}/{key}"
        return f"{url}?v={HANT}" if v == HANT else url

    # --- per-recipient URLs (contain slots) ------------------------------
    @property
    def open_pixel_url(self) -> str:
        return f"{self.base_url}/o/{SLOTS['TOKEN']}.gif"

    def click_url(self, link_position: int) -> str:
        return f"{self.base_url}/c/{SLOTS['TOKEN']}/{link_position}"

    @property
    def unsubscribe_url(self) -> str:
        return f"{self.base_url}/u/{SLOTS['UNSUB']}"

    def subscribe_url(self, src: str = "wechat") -> str:
        """The public subscribe page of the publication, tagged with where the reader came from."""
        return f"{self.base_url}/subscribe/{self.publication_slug}?src={src}"

    @property
    def preferences_url(self) -> str:
        return f"{self.base_url}/p/{SLOTS['UNSUB']}"


def archive_url(ctx: RenderContext, issue: Issue, variant: str | None = None) -> str:
    """Module-level spelling of :meth:`RenderContext.archive_url`."""
    return ctx.archive_url(issue, variant)
