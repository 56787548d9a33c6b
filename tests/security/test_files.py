"""F1 and the path-traversal class: no file outside an issue's folder is ever read or served."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.content.lint import lint_source
from newsletter.content.parser import parse_issue
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.errors import IssueFormatError
from newsletter.core.safety.safepath import media_dir, reference_problem
from newsletter.issues.store import create_issue
from newsletter.models import Issue
from tests.security.conftest import issue_text

PNG = (Path(__file__).resolve().parents[2] / "examples" / "images" / "cover.png").read_bytes()

HOSTILE_PATHS = [
    "/proc/self/environ",
    "../../etc/passwd",
    "../../../../../../etc/passwd",
    "/etc/passwd",
    "images/../../../etc/passwd",
    "%2e%2e/%2e%2e/etc/passwd",  # stays a literal name: not found, never decoded into ../
    "file:///etc/passwd",
    "a\x00.png",
]


def _issue_count() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(Issue)) or 0)


@pytest.mark.parametrize("path", ["/proc/self/environ", "../../etc/passwd"])
def test_f1_chain_fails_at_its_first_step(as_role, pg_app: Settings, path: str) -> None:  # type: ignore[no-untyped-def]
    """The reported chain: ops uploads an issue naming a server file, then anyone GETs
    /media/<sha256>.  Now the upload itself is refused (422), nothing is registered,
    and the media URL of the file's hash is a 404."""
    ops = as_role("ops")
    text = issue_text(f"正文。\n\n![a]({path})")
    r = ops.post("/api/issues", files={"file": ("issue.md", text.encode(), "text/markdown")})
    assert r.status_code == 422, r.text
    assert "outside" in r.json()["detail"] or "超出" in r.json()["detail"]
    assert _issue_count() == 0
    media = media_dir()
    assert not media.exists() or list(media.iterdir()) == []
    target = Path("/proc/self/environ" if path.startswith("/proc") else "/etc/passwd")
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
    anon = TestClient(ops.client.app, base_url="https://testserver")
    assert anon.get(f"/media/{sha}").status_code == 404
    # and the secret key is nowhere in anything the app answered
    assert pg_app.secret_key.get_secret_value() not in r.text


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_lint_reports_every_escaping_reference(tmp_path: Path, path: str) -> None:
    issue = tmp_path / "issue" / "issue.md"
    issue.parent.mkdir()
    text = issue_text(f"![a]({path})") if "\x00" not in path else issue_text("正文")
    issue.write_text(text, encoding="utf-8")
    if "\x00" in path:
        assert reference_problem(issue.parent, path) is not None
        return
    doc = parse_issue(text, base_dir=issue.parent)
    assert all(im.sha256 is None for im in doc.images)  # nothing outside was read
    if not doc.images:
        assert path.startswith("file:")  # markdown-it refuses file: outright; no image at all
        return
    codes = {m.code for m in lint_source(text, issue) if m.level == "error"}
    assert codes & {"image-path", "image-url", "image-missing"}, codes


def test_symlink_out_of_the_issue_folder_is_refused(pg_app: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "brief"
    folder.mkdir()
    os.symlink("/etc/passwd", folder / "chart.png")
    (folder / "issue.md").write_text(issue_text("![图](chart.png)"), encoding="utf-8")
    codes = [m.code for m in lint_source((folder / "issue.md").read_text(), folder / "issue.md")]
    assert "image-path" in codes
    with pytest.raises(IssueFormatError, match="outside"), session_scope() as s:
        create_issue(s, folder / "issue.md")
    assert _issue_count() == 0
    assert not media_dir().exists() or list(media_dir().iterdir()) == []


def test_symlinked_cover_is_refused(pg_app: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "brief"
    folder.mkdir()
    os.symlink("/proc/self/environ", folder / "cover.png")
    text = issue_text("正文").replace("number: 7", "number: 7\ncover: cover.png")
    (folder / "issue.md").write_text(text, encoding="utf-8")
    with pytest.raises(IssueFormatError), session_scope() as s:
        create_issue(s, folder / "issue.md")


def test_a_real_image_inside_the_folder_is_registered_and_served(
    pg_app: Settings, anon: TestClient, tmp_path: Path
) -> None:
    folder = tmp_path / "brief"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "chart.png").write_bytes(PNG)
    (folder / "issue.md").write_text(issue_text("![图](images/chart.png)"), encoding="utf-8")
    with session_scope() as s:
        create_issue(s, folder / "issue.md")
    sha = hashlib.sha256(PNG).hexdigest()
    r = anon.get(f"/media/{sha}")
    assert r.status_code == 200
    assert r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_media_serves_only_registered_images(pg_app: Settings, anon: TestClient) -> None:
    """Something that is not a registered image in the media folder is never served:
    a non-image file, a file whose name is not its hash, and a symlink."""
    media = media_dir()
    media.mkdir(parents=True, exist_ok=True)
    secret = b"NEWSLETTER_SECRET_KEY=leak\n"
    text_sha = hashlib.sha256(secret).hexdigest()
    (media / text_sha).write_bytes(secret)
    wrong = "0" * 64
    (media / wrong).write_bytes(PNG)
    env = Path("/etc/hostname").read_bytes()
    link_sha = hashlib.sha256(env).hexdigest()
    os.symlink("/etc/hostname", media / link_sha)
    for sha in (text_sha, wrong, link_sha, "../" + "a" * 61, "A" * 64):
        assert anon.get(f"/media/{sha}").status_code == 404, sha


def test_nul_byte_in_a_reference_is_refused(tmp_path: Path) -> None:
    assert reference_problem(tmp_path, "ok.png\x00../../etc/passwd") is not None
    assert reference_problem(tmp_path, "ok.png") is None
    assert reference_problem(tmp_path, "sub/../ok.png") is None
    assert reference_problem(tmp_path, "sub/../../x.png") is not None


def test_upload_cannot_place_images_outside_its_folder(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    ops = as_role("ops")
    text = issue_text("![a](../../../evil.png)")
    r = ops.post(
        "/api/issues",
        files=[
            ("file", ("issue.md", text.encode(), "text/markdown")),
            ("images", ("evil.png", PNG, "image/png")),
        ],
    )
    assert r.status_code == 422
    assert not (pg_app.var_dir.parent / "evil.png").exists()
    assert not (pg_app.var_dir / "evil.png").exists()
