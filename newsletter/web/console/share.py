"""What ops copy to bring readers to a list: its form's address, an <iframe> snippet for
another site, and QR codes (SVG for print, PNG for WeChat and slides)."""

from __future__ import annotations

from html import escape
from typing import Any

from newsletter.core.config import get_settings

__all__ = ["share_info"]


def share_info(list_id: int) -> dict[str, Any]:
    cfg = get_settings()
    base = cfg.base_url.rstrip("/")
    form = f"{base}/subscribe/{list_id}"
    embed = f"{form}/embed?src=embed"
    snippet = (
        f'<iframe src="{escape(embed, quote=True)}" title="订阅 / Subscribe" '
        'style="width:100%;max-width:520px;height:460px;border:0" loading="lazy"></iframe>'
    )
    return {
        "form": form,
        "form_wechat": f"{form}?src=wechat",
        "embed": embed,
        "snippet": snippet,
        "qr_svg": f"/subscribe/{list_id}/qr.svg",
        "qr_png": f"/subscribe/{list_id}/qr.png",
        "origins": list(cfg.embed_origins),
    }
