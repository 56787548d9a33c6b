"""External images: fetched and uploaded, never sent as they are; an image that
cannot be fetched is a lint error and fails only the WeChat channel; the fetch
cannot be turned against the internal network."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings, reset_wechat_settings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.wechat.assets import external_images, fetch_image
from newsletter.wechat.errors import WeChatMediaError
from newsletter.wechat.publisher import publish_issue
from tests.httpserve import serve_paths
from tests.wechat.helpers import SAMPLE, add_approved

FakeT = tuple[FakeWeChat, str]
PNG = (SAMPLE.parent / "images" / "chart-1.png").read_bytes()


@pytest.fixture
def images() -> Iterator[str]:
    with serve_paths(
        {
            "/pic.png": (200, {}, PNG),
            "/big.png": (200, {}, b"\x89PNG" + b"\0" * 1_100_000),
            "/page.html": (200, {}, b"<html></html>"),
            "/moved": (302, {"Location": "/pic.png"}, b""),
        }
    ) as base:
        yield base


def _issue_with(tmp_path: Path, url: str) -> Path:
    folder = tmp_path / "issue"
    folder.mkdir()
    shutil.copytree(SAMPLE.parent / "images", folder / "images")
    text = SAMPLE.read_text(encoding="utf-8")
    marker = "## 一、政策法规"
    text = text.replace(marker, f"![外部图表]({url})\n\n{marker}", 1)
    (folder / "issue.md").write_text(text, encoding="utf-8")
    return folder / "issue.md"


def test_external_image_is_uploaded_not_sent(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, images: str, tmp_path: Path
) -> None:
    f, _ = fake
    local = wx.model_copy(update={"fetch_private_images": True})
    issue_id = add_approved(_issue_with(tmp_path, f"{images}/moved"))
    out = publish_issue(issue_id, settings=local)
    assert out["state"] == "done", out
    pushed = "".join(a["content"] for p in f.published.values() for a in p["articles"])
    assert images not in pushed and external_images(pushed) == []
    assert pushed.count('src="http://mmbiz.qpic.cn/') >= 2  # the chart and the external one
    # the same picture as the local chart: one upload serves both (same hash)
    assert len(f.calls("/cgi-bin/media/uploadimg", ok=True)) == 1
    assert "外部图表" in pushed


@pytest.mark.parametrize(
    ("path", "why"),
    [("/missing.png", "HTTP 404"), ("/page.html", "not a PNG or JPEG"), ("/big.png", "larger")],
)
def test_unfetchable_image_fails_wechat_only_and_lint_says_so(
    sqlite_settings: Settings,
    fake: FakeT,
    wx: WeChatSettings,
    images: str,
    tmp_path: Path,
    path: str,
    why: str,
) -> None:
    f, _ = fake
    local = wx.model_copy(update={"fetch_private_images": True})
    src = _issue_with(tmp_path, f"{images}{path}")
    reset_wechat_settings(local)
    r = CliRunner().invoke(app, ["issue", "lint", str(src), "--json"])
    assert r.exit_code == 1, r.output
    errors = [m for m in json.loads(r.stdout)["messages"] if m["level"] == "error"]
    assert [m["code"] for m in errors] == ["wechat-image"] and why in errors[0]["message"]
    out = publish_issue(add_approved(src), settings=local)
    assert out["state"] == "failed" and why in out["error"]
    assert f.calls("/cgi-bin/draft/add") == []


def test_private_addresses_are_refused_by_default(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, images: str, tmp_path: Path
) -> None:
    f, _ = fake
    out = publish_issue(add_approved(_issue_with(tmp_path, f"{images}/pic.png")), settings=wx)
    assert out["state"] == "failed" and "not a public address" in out["error"]
    assert f.calls("/cgi-bin/draft/add") == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.png",
        "http://localhost/x.png",
        "http://10.0.0.7/x.png",
        "http://0.0.0.0/x.png",
        "file:///etc/passwd",
        "ftp://example.org/x.png",
        "gopher://127.0.0.1:6379/_INFO",
        "http://[::ffff:127.0.0.1]/x.png",
    ],
)
def test_fetch_refuses_internal_targets(url: str) -> None:
    with pytest.raises(WeChatMediaError):
        fetch_image(url, timeout=2)


def test_redirect_to_a_private_address_is_refused(images: str) -> None:
    """A public page cannot bounce the fetch inward: each hop is checked again."""
    with pytest.raises(WeChatMediaError, match="public"):
        fetch_image(f"{images}/moved", allow_private=False, timeout=2)
    data, name = fetch_image(f"{images}/moved", allow_private=True, timeout=2)
    assert data == PNG and name == "image.png"


def test_subscribe_qr_footer_is_uploaded_like_any_image(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    """The headline article carries the subscribe QR code: uploaded through uploadimg,
    and the picture WeChat serves decodes to the subscribe form."""
    import io

    import zxingcpp
    from PIL import Image

    from newsletter.core.config import reset_settings

    f, _ = fake
    reset_settings(sqlite_settings.model_copy(update={"wechat_subscribe_qr": True}))
    issue_id = add_approved(SAMPLE)
    out = publish_issue(issue_id, settings=wx)
    assert out["state"] == "done", out
    headline = next(iter(f.published.values()))["articles"][0]["content"]
    assert "wxasset:" not in headline
    srcs = [u for u in f.images if f'src="{u}"' in headline]
    decoded = [
        r.text for u in srcs for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(f.images[u])))
    ]
    from newsletter.core.db import session_scope
    from newsletter.models import Issue, Publication

    with session_scope() as s:
        slug = s.scalar(
            select(Publication.slug)
            .join(Issue, Issue.publication_id == Publication.id)
            .where(Issue.id == issue_id)
        )
    assert decoded == [f"{sqlite_settings.base_url}/subscribe/{slug}?src=wechat-qr"], decoded
    assert "长按识别二维码" in headline


# -- local images: checked by their bytes before anything is uploaded (issue 29) ----------

GIF = b"GIF89a" + b"\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 64
BIG_PNG = PNG[:8] + b"\0" * 1_470_000  # 1.47 MB: over uploadimg's 1 MB


def _issue_with_files(tmp_path: Path, chart: bytes, cover: bytes, chart_name: str = "") -> Path:
    folder = tmp_path / "issue"
    shutil.copytree(SAMPLE.parent / "images", folder / "images")
    (folder / "images" / "chart-1.png").write_bytes(chart)
    (folder / "images" / "cover.png").write_bytes(cover)
    text = SAMPLE.read_text(encoding="utf-8")
    if chart_name:
        (folder / "images" / "chart-1.png").rename(folder / "images" / chart_name)
        text = text.replace("images/chart-1.png", f"images/{chart_name}")
    (folder / "issue.md").write_text(text, encoding="utf-8")
    return folder / "issue.md"


@pytest.mark.parametrize(
    ("chart", "cover", "file", "item", "zh"),
    [
        (GIF, PNG, "chart-1.png", "article ", "是 GIF，正文图片只能是 JPEG/PNG"),
        (BIG_PNG, PNG, "chart-1.png", "article ", "正文图片最多 1,000,000 字节"),
        (PNG, b"<svg/>", "cover.png", "the cover", "不是图片，封面只能是"),
    ],
)
def test_bad_local_image_is_refused_before_any_upload_naming_file_and_item(
    sqlite_settings: Settings,
    fake: FakeT,
    wx: WeChatSettings,
    tmp_path: Path,
    chart: bytes,
    cover: bytes,
    file: str,
    item: str,
    zh: str,
) -> None:
    f, _ = fake
    src = _issue_with_files(tmp_path, chart, cover)
    r = CliRunner().invoke(app, ["issue", "lint", str(src), "--json"])  # lint says so first
    errors = [m for m in json.loads(r.stdout)["messages"] if m["level"] == "error"]
    assert r.exit_code == 1 and [m["code"] for m in errors] == ["wechat-image"], r.output
    assert file in errors[0]["message"] and zh in errors[0]["message"]
    out = publish_issue(add_approved(src), settings=wx)
    assert out["state"] == "failed", out
    error = out["error"]
    assert f"image {file}" in error and item in error and zh in error, error
    assert error.index(zh) < error.index("image ")  # Chinese first
    assert f.calls("/cgi-bin/media/uploadimg") == []
    assert f.calls("/cgi-bin/material/add_material") == []
    assert f.violations() == []  # WeChat was never asked to take it


def test_images_are_labelled_by_their_bytes_not_their_names(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    """A PNG named .jpg goes to uploadimg as image/png; a GIF cover (add_material takes
    GIFs) goes as image/gif, never labelled image/jpeg."""
    f, _ = fake
    path = _issue_with_files(tmp_path, PNG, GIF, chart_name="chart-1.jpg")
    out = publish_issue(add_approved(path), settings=wx)
    assert out["state"] == "done", out
    (body,) = f.calls("/cgi-bin/media/uploadimg", ok=True)
    (cover,) = f.calls("/cgi-bin/material/add_material", ok=True)
    assert body.upload is not None and body.upload[0] == "chart-1.png"
    assert body.upload_type == "image/png"
    assert cover.upload is not None and cover.upload[0] == "cover.gif"
    assert cover.upload_type == "image/gif"
    assert f.violations() == []


def test_a_refusal_by_wechat_names_the_file_and_the_article(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    f.fail_next["/cgi-bin/media/uploadimg"] = 40009
    out = publish_issue(add_approved(), settings=wx)
    assert out["state"] == "failed" and out["errcode"] == 40009, out
    assert "第" in out["error"] and "chart-1.png" in out["error"]
    assert "article " in out["error"] and "errcode 40009" in out["error"]


def test_an_image_host_that_rebinds_is_never_reached_inside() -> None:
    """Each hop is resolved once and connected to the address checked: the first hop
    goes to the public answer (127.0.0.2 plays one), and a redirect whose lookup now
    answers 127.0.0.1 is refused before anything is asked there."""
    from newsletter.core.safety.pinned import set_resolver
    from tests.httpserve import Names

    inner_seen: list[tuple[str, str]] = []
    outer_seen: list[tuple[str, str]] = []
    names = Names()
    set_resolver(names, public=frozenset({"127.0.0.2"}))
    try:
        with serve_paths({"/pic.png": (200, {}, b"\xff\xd8\xffinternal")}, seen=inner_seen) as b:
            port = int(b.rsplit(":", 1)[1])
            routes = {
                "/pic.png": (200, {}, PNG),
                "/r": (302, {"Location": f"http://img.example.test:{port}/pic.png"}, b""),
            }
            with serve_paths(routes, host="127.0.0.2", port=port, seen=outer_seen):
                names["img.example.test"] = ["127.0.0.2", "127.0.0.1"]
                data, _ = fetch_image(f"http://img.example.test:{port}/pic.png", timeout=5)
                assert data == PNG and names.lookups["img.example.test"] == 1
                names.lookups.clear()
                with pytest.raises(WeChatMediaError, match="not a public address"):
                    fetch_image(f"http://img.example.test:{port}/r", timeout=5)
    finally:
        set_resolver(None)
    assert inner_seen == []
    assert [p for p, _ in outer_seen] == ["/pic.png", "/r"]
    assert all(h.startswith("img.example.test:") for _, h in outer_seen)
