"""Two-factor login (TOTP, RFC 6238) in real headless Chromium.

The admin requires a second factor for ops; ops, after the right password, is sent to
enrol and nowhere else. The test reads the QR code the page shows (zxing-cpp, an
independent decoder), computes the code from its secret with pyotp and turns the factor
on. From then on the password alone does not sign in, a recovery code works once, a
token needs a fresh code, and `newsletter users 2fa reset` (audited) ends it all.
The product's clock is moved instead of waiting for the next 30-second step.
"""

from __future__ import annotations

import base64
import io
import re
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pyotp
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli.main import app as cli_app
from newsletter.core import clock
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.devtools.sink import SinkHandler
from newsletter.models import AuditLog
from newsletter.models.console import RecoveryCode, User
from tests.conftest import MovableClock
from tests.console.helpers import PASSWORDS
from tests.console.test_browser import ARGS

pytestmark = pytest.mark.e2e


def _password(page, base: str, who: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PASSWORDS[who])
    page.click("button[type=submit]")


def _code(secret: str) -> str:
    return pyotp.TOTP(secret).at(int(clock.timestamp()))


def test_enrol_login_recovery_and_required_role(
    server: tuple[str, Settings, SinkHandler], moved_clock: MovableClock
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _settings, _sink = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            # -- the admin requires a second factor for ops (and only ops) ----------------
            admin = browser.new_page(locale="zh-CN")
            admin.set_default_timeout(20_000)
            _password(admin, base, "admin")
            admin.wait_for_url(f"{base}/console/")
            admin.goto(f"{base}/console/settings")
            form = admin.locator("#two-factor-roles")
            for role in ("admin", "ops", "editor", "marketing"):
                box = form.locator(f"input[value={role}]")
                box.set_checked(role == "ops")
            form.locator("button[type=submit]").click()
            expect(admin.locator(".flash")).to_contain_text("已保存")
            admin.goto(f"{base}/console/sends")  # the admin's role needs none: not sent away
            assert admin.url == f"{base}/console/sends"

            # -- ops: the right password leads to enrolment, and nowhere else -------------
            ctx = browser.new_context(locale="zh-CN")
            ops = ctx.new_page()
            ops.set_default_timeout(20_000)
            _password(ops, base, "ops")
            ops.wait_for_url(f"{base}/console/account/2fa")
            expect(ops.locator("#two-factor-required")).to_be_visible()
            ops.goto(f"{base}/console/sends")
            assert ops.url == f"{base}/console/account/2fa"
            api = ops.request.get(f"{base}/api/me")
            assert api.status == 403 and "two-factor" in api.text()

            # -- the QR code carries the secret shown beside it ---------------------------
            src = ops.get_attribute("#totp-qr", "src") or ""
            assert src.startswith("data:image/png;base64,")
            png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            uri = next(r.text for r in zxingcpp.read_barcodes(png))
            parts = urlsplit(uri)
            assert parts.scheme == "otpauth" and parts.netloc == "totp"
            assert unquote(parts.path).endswith(":ops")
            secret = parse_qs(parts.query)["secret"][0]
            assert secret == ops.inner_text("#totp-secret").strip()

            ops.fill(
                "#enrol-form input[name=code]", "123456" if _code(secret) != "123456" else "654321"
            )
            ops.click("#enrol-form button[type=submit]")
            expect(ops.locator(".flash.error").first).to_contain_text("验证码不正确")
            ops.fill("#enrol-form input[name=code]", _code(secret))
            ops.click("#enrol-form button[type=submit]")
            codes = [c.strip() for c in ops.locator("#recovery-codes code").all_inner_texts()]
            assert len(codes) == 10 and len(set(codes)) == 10
            assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in codes)
            with session_scope() as s:
                stored = s.scalars(select(RecoveryCode.code_hash)).all()
                row = s.scalar(select(User).where(User.username == "ops"))
                assert row is not None and row.totp_secret is not None
                assert secret not in row.totp_secret  # kept encrypted
            assert len(stored) == 10 and not any(
                c.replace("-", "") in h for c in codes for h in stored
            )
            ops.goto(f"{base}/console/sends")
            assert ops.url == f"{base}/console/sends"
            ops.click("form[action='/console/logout'] button")
            ops.wait_for_url(re.compile(r".*/console/login"))

            # -- the password alone does not sign in ---------------------------------------
            _password(ops, base, "ops")
            expect(ops.locator("#login-code")).to_be_visible()
            ops.goto(f"{base}/console/")
            assert "/console/login" in ops.url  # no session yet
            with httpx.Client(base_url=base) as raw:  # the same without a browser
                html = raw.get("/console/login").text
                csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
                assert csrf
                r = raw.post(
                    "/console/login",
                    data={"username": "ops", "password": PASSWORDS["ops"], "csrf": csrf.group(1)},
                )
                assert r.status_code == 200 and 'action="/console/login/code"' in r.text
                assert "nl_session" not in r.cookies
                wrong = "000000" if _code(secret) != "000000" else "111111"
                r = raw.post("/console/login/code", data={"code": wrong, "csrf": csrf.group(1)})
                assert r.status_code == 401 and "验证码不正确" in r.text
                assert "nl_session" not in r.cookies
                assert raw.get("/console/", follow_redirects=False).status_code == 303
            # (each step counts against the login delays of ops at this address: five
            # attempts are free, and a success clears them)

            # -- a recovery code works once -----------------------------------------------
            _password(ops, base, "ops")
            ops.fill("#login-code input[name=code]", codes[3].upper())
            ops.click("#login-code button[type=submit]")
            ops.wait_for_url(f"{base}/console/account/2fa")
            expect(ops.locator(".flash")).to_contain_text("9")
            expect(ops.locator("#recovery-left")).to_have_text("9")
            ops.context.clear_cookies()
            _password(ops, base, "ops")
            ops.fill("#login-code input[name=code]", codes[3])
            ops.click("#login-code button[type=submit]")
            expect(ops.locator(".flash.error").first).to_contain_text("验证码不正确")
            ops.goto(f"{base}/console/")
            assert "/console/login" in ops.url

            # -- a TOTP code signs in, once: the same code is not taken twice --------------
            moved_clock.advance(30)
            now_code = _code(secret)
            _password(ops, base, "ops")
            ops.fill("#login-code input[name=code]", now_code)
            ops.click("#login-code button[type=submit]")
            ops.wait_for_url(f"{base}/console/")

            # -- a personal API token needs a fresh code -----------------------------------
            ops.goto(f"{base}/console/account")
            ops.fill("input[name=name]", "crm")
            ops.fill("form[action='/console/account/tokens'] input[name=code]", now_code)
            ops.click("form[action='/console/account/tokens'] button[type=submit]")
            expect(ops.locator(".flash.error")).to_contain_text("两步验证码")
            expect(ops.locator("#new-token")).to_have_count(0)
            moved_clock.advance(30)
            ops.fill("input[name=name]", "crm")
            ops.fill("form[action='/console/account/tokens'] input[name=code]", _code(secret))
            ops.click("form[action='/console/account/tokens'] button[type=submit]")
            token = ops.inner_text("#new-token").strip()
            # The token itself is unaffected by the second factor.
            me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["username"] == "ops"
            # The API asks for the code too, even with a token.
            made = httpx.post(
                f"{base}/api/tokens",
                json={"name": "more"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code == 403, made.text
            moved_clock.advance(30)
            made = httpx.post(
                f"{base}/api/tokens",
                json={"name": "more", "otp": _code(secret)},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code == 201, made.text

            # -- new recovery codes: only with a current code; the old ones stop working --
            ops.goto(f"{base}/console/account/2fa")
            ops.fill("#recovery-form input[name=code]", "12345x")
            ops.click("#recovery-form button[type=submit]")
            expect(ops.locator(".flash.error").first).to_contain_text("验证码不正确")
            with session_scope() as s:
                uid = s.scalar(select(User.id).where(User.username == "ops"))
                before = set(
                    s.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == uid))
                )
            moved_clock.advance(30)
            ops.fill("#recovery-form input[name=code]", _code(secret))
            ops.click("#recovery-form button[type=submit]")
            fresh = ops.locator("#recovery-codes code").all_inner_texts()
            assert len(fresh) == 10 and len(set(fresh)) == 10
            with session_scope() as s:
                after = set(
                    s.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == uid))
                )
                assert len(after) == 10 and not (after & before)
                assert s.scalar(select(AuditLog.id).where(AuditLog.action == "user.2fa_recovery"))

            # -- the admin resets it at the command line: audited, sessions end -----------
            out = CliRunner().invoke(cli_app, ["users", "2fa", "reset", "ops"])
            assert out.exit_code == 0, out.output
            assert "ops" in out.output
            with session_scope() as s:
                entry = s.scalar(select(AuditLog).where(AuditLog.action == "user.2fa_reset"))
                assert entry is not None and entry.actor == "cli" and entry.target == "ops"
                assert s.scalar(select(RecoveryCode.id)) is None
            ops.goto(f"{base}/console/sends")
            assert "/console/login" in ops.url
            _password(ops, base, "ops")  # the password again leads to a new enrolment
            ops.wait_for_url(f"{base}/console/account/2fa")
            assert ops.inner_text("#totp-secret").strip() != secret
        finally:
            browser.close()


def test_an_install_requires_admin_and_ops_until_the_admin_chooses(
    console_settings: Settings,
) -> None:
    """The default (no choice stored): admin and ops; the admin's choice replaces it."""
    from newsletter.web.console import twofactor

    assert Settings.model_fields["two_factor_roles"].default == "admin,ops"
    console_settings.two_factor_roles = Settings.model_fields["two_factor_roles"].default
    with session_scope() as s:
        assert twofactor.required_roles(s) == {"admin", "ops"}
        ops = s.scalar(select(User).where(User.username == "ops"))
        editor = s.scalar(select(User).where(User.username == "editor"))
        assert ops is not None and editor is not None
        assert twofactor.must_enrol(s, ops) and not twofactor.must_enrol(s, editor)
        twofactor.set_required_roles(s, ["editor", "nobody"], "admin")
    with session_scope() as s:
        assert twofactor.required_roles(s) == {"editor"}
