"""Bridging the channels: the embeddable subscribe form, its QR codes (read back by an
independent decoder, zxing-cpp) and the WeChat headline's QR footer."""

from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from newsletter.audience.service import get_or_create_list
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.models import Subscriber
from newsletter.render.qr import qr_png
from newsletter.web.app import create_app


def _decode_png(data: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))]


def _decode_svg(svg: str) -> list[str]:
    # Raster the SVG's modules ourselves (no SVG library): segno writes one path of
    # horizontal runs "Mx yhN" in module units, which is all a QR code needs.
    m = re.search(r'd="([^"]+)"', svg)
    assert m is not None
    size = int(re.search(r'width="(\d+)"', svg).group(1)) // 6  # type: ignore[union-attr]
    img = Image.new("L", (size * 8, size * 8), 255)
    x = y = 0.0
    for cmd, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?:[ ,](-?[\d.]+))?", m.group(1)):
        if cmd == "M":
            x, y = float(a), float(b)
        elif cmd == "m":
            x, y = x + float(a), y + float(b)
        else:
            run = float(a)
            for i in range(int(run)):
                px, py = int((x + i) * 8), int((y - 0.5) * 8)
                for dx in range(8):
                    for dy in range(8):
                        img.putpixel((px + dx, py + dy), 0)
            x += run
    return [r.text for r in zxingcpp.read_barcodes(img)]


@pytest.fixture
def list_id(sqlite_settings: Settings) -> int:
    with session_scope() as s:
        return get_or_create_list(s, "政策周报订阅").id


def test_qr_codes_lead_to_the_form(sqlite_settings: Settings, list_id: int) -> None:
    c = TestClient(create_app(), base_url="https://testserver")
    png = c.get(f"/subscribe/{list_id}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    target = f"{sqlite_settings.base_url}/subscribe/{list_id}?src=qr"
    assert _decode_png(png.content) == [target]
    svg = c.get(f"/subscribe/{list_id}/qr.svg", params={"v": "zh-Hant"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert _decode_svg(svg.text) == [target + "&v=zh-Hant"]
    # the code leads to a working form, which records where the reader came from
    form = c.get(f"/subscribe/{list_id}", params={"src": "qr"})
    assert form.status_code == 200 and 'name="src" value="qr"' in form.text
    assert c.get("/subscribe/999999/qr.png").status_code == 404
    assert c.get("/subscribe/<script>/qr.svg").status_code == 404


def test_embedded_form_may_be_framed_only_by_listed_sites(
    sqlite_settings: Settings, list_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = TestClient(create_app(), base_url="https://testserver")
    r = c.get(f"/subscribe/{list_id}/embed")
    assert r.status_code == 200
    assert "frame-ancestors 'self';" in r.headers["content-security-policy"]
    assert 'name="embed" value="1"' in r.text
    # the ordinary form stays unframeable by others
    plain = c.get(f"/subscribe/{list_id}")
    assert "frame-ancestors 'self';" in plain.headers["content-security-policy"]

    reset_settings(
        sqlite_settings.model_copy(
            update={"embed_origins": ["https://www.partner.example", "https://*.example.cn"]}
        )
    )
    c = TestClient(create_app(), base_url="https://testserver")
    r = c.get(f"/subscribe/{list_id}/embed")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://www.partner.example https://*.example.cn;" in csp
    assert "script-src 'self'" in csp  # the rest of the policy is unchanged
    assert (
        "frame-ancestors 'self';"
        in c.get(f"/subscribe/{list_id}").headers["content-security-policy"]
    )
    # a sign-up through the frame: the answer is frameable too, and the source is kept
    stamp = re.search(r'name="stamp" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    import newsletter.audience.optin as optin

    monkeypatch.setattr(optin, "_MIN_FORM_SECONDS", 0)  # the bot check's minimum fill time
    done = c.post(
        f"/subscribe/{list_id}",
        data={
            "email": "reader@example.org",
            "name": "读者",
            "stamp": stamp,
            "embed": "1",
            "src": "embed",
        },
    )
    assert done.status_code == 200, done.text[:300]
    assert "https://www.partner.example" in done.headers["content-security-policy"]
    with session_scope() as s:
        assert s.scalar(select(Subscriber).where(Subscriber.email == "reader@example.org"))


@pytest.mark.parametrize(
    "origin",
    [
        "https://x.cn; script-src *",
        "javascript:1",
        "https://a b",
        "https://x.cn/path",
        "*",
        # digits that are not ASCII cannot go into a header
        "https://x.cn:\u0663\u0660",
        "https://x.cn:\uff18\uff10",
        "https://x.cn:99999",
        "https://x.cn:0",
        # a wildcard over a whole top-level domain
        "https://*.cn",
        "http://*.com",
    ],
)
def test_embed_origins_must_be_origins(sqlite_settings: Settings, origin: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as exc:
        Settings(embed_origins=[origin])
    assert "scheme://host[:port]" in str(exc.value)


def test_qr_bytes_are_stable() -> None:
    url = "https://news.example.org/subscribe/weekly?src=wechat-qr"
    assert qr_png(url) == qr_png(url)
    assert _decode_png(qr_png(url)) == [url]
