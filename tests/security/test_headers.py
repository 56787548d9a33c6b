"""F3 and the header-injection / SMTP-smuggling class.

Hostile names travel the real path: a CSV (or XLSX) file → the importer →
PostgreSQL → the delivery engine → the DKIM-signing message builder → SMTP →
a lax server that also ends DATA at ``LF . LF``.  On the wire: one
transaction per delivery, exactly the headers we write, ``To`` equal to the
intended address and cleaned name, a valid DKIM signature, no bare LF.
"""

from __future__ import annotations

import csv
import email
import itertools
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.utils import parseaddr
from pathlib import Path

import dkim
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from newsletter.audience.importer import import_file
from newsletter.core import clock
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.headers import ENCODED_WORD_MAX, HeaderInjection, clean_text
from newsletter.delivery.assemble import compile_message
from newsletter.delivery.compiled import clear_cache
from newsletter.delivery.dkim_keys import dns_txt_record, generate_rsa_key
from newsletter.delivery.run import drive_inline
from newsletter.models import Delivery, MailingList, Send, Subscriber, Subscription
from tests.factories import seed
from tests.security.laxsmtp import LaxSmtp, Transaction

SMUGGLE = (
    "\n.\nMAIL FROM:<x@evil.example>\nRCPT TO:<victim@third.example>\nDATA\n"
    "Subject: smuggled\n\nhi\n.\n"
)
NASTY = st.sampled_from(
    [
        "\r", "\n", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\t", "\x1b", "\x7f",
        "\u200f", "\u202e", "\u200b", "😀", "👩‍👩‍👧", "李", "陳", "é", '"', "<", ">", ",", ";",
        ":", "\\", "=?utf-8?b?", "?=", "Bcc: victim@third.example", SMUGGLE, " ", "  ",
    ]
)  # fmt: skip
# NUL is left out of CSV files: a NUL byte makes the whole file refused (tested in test_cli).
NAMES = (
    st.lists(
        st.one_of(
            NASTY,
            st.text(
                st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
            ),
        ),
        max_size=12,
    )
    .map("".join)
    .map(lambda s: s[:200])
)
EXPECTED_HEADERS = {
    "dkim-signature", "to", "message-id", "date", "list-unsubscribe", "from", "subject",
    "mime-version", "list-id", "list-unsubscribe-post", "feedback-id", "precedence",
    "content-type",
}  # fmt: skip
DOMAIN, SELECTOR = "example.org", "sec2026"


class Mail:
    """The whole path from a file to the lax SMTP server, reusable across examples."""

    def __init__(self, settings: Settings, tmp: Path, pem: bytes) -> None:
        self.lax = LaxSmtp().start()
        self.tmp = tmp
        reset_settings(
            settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": self.lax.port})
        )
        clear_cache()
        self.ids = seed(0)
        self.n = itertools.count(1)
        record = dns_txt_record(pem).encode()
        self.dns = lambda name, timeout=5: (
            record if name.decode().rstrip(".") == f"{SELECTOR}._domainkey.{DOMAIN}" else None
        )

    def deliver(self, name: str, *, xlsx: bool = False) -> tuple[str, str, list[Transaction]]:
        """Import one subscriber called ``name``, send to them; (address, stored name, wire)."""
        i = next(self.n)
        addr = f"reader{i}@example.com"
        path = self.tmp / (f"subs{i}.xlsx" if xlsx else f"subs{i}.csv")
        if xlsx:
            from openpyxl import Workbook

            wb = Workbook()
            wb.active.append(["email", "name"])
            wb.active.append([addr, name])
            wb.save(path)
        else:
            with path.open("w", encoding="utf-8", newline="") as fh:
                csv.writer(fh).writerows([["email", "name"], [addr, name]])
        import_file(path, f"list{i}")
        before = len(self.lax.transactions)
        with session_scope() as s:
            ml = s.scalar(select(MailingList).where(MailingList.name == f"list{i}"))
            stored = s.scalar(select(Subscriber.name).where(Subscriber.email == addr))
            assert ml is not None and stored is not None
            send = Send(
                publication_id=self.ids["publication"],
                issue_id=self.ids["issue"],
                list_id=ml.id,
                channel="email",
                state="draft",
            )
            s.add(send)
            s.flush()
            send_id = send.id
        assert drive_inline(send_id) == "finished"
        return addr, stored, self.lax.transactions[before:]


@pytest.fixture
def mail(pg_app: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mail]:
    pem = generate_rsa_key(2048)
    (tmp_path / "dkim.pem").write_bytes(pem)
    monkeypatch.setenv("NEWSLETTER_DKIM_DOMAIN", DOMAIN)
    monkeypatch.setenv("NEWSLETTER_DKIM_SELECTOR", SELECTOR)
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(tmp_path / "dkim.pem"))
    m = Mail(pg_app, tmp_path, pem)
    yield m
    m.lax.stop()
    clear_cache()


def _check_wire(m: Mail, raw: str, addr: str, stored: str, wire: list[Transaction]) -> None:
    # The name was cleaned where it entered: no control character, no line separator.
    assert stored == clean_text(stored)
    assert not any(c in stored for c in "\r\n\x00\u2028\u2029\x85")
    # Exactly one SMTP transaction, to the intended address only.
    assert len(wire) == 1, [t.rcpts for t in wire]
    assert wire[0].rcpts == [addr]
    data = wire[0].data
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF on the wire"
    assert b"\r" not in data.replace(b"\r\n", b""), "bare CR on the wire"
    head = data.split(b"\r\n\r\n", 1)[0]
    msg = email.message_from_bytes(data)
    assert {k.lower() for k in msg} == EXPECTED_HEADERS
    assert len(msg.get_all("To") or []) == 1
    # Folded lines are continuation lines; every encoded-word is at most 75 characters.
    for line in head.split(b"\r\n"):
        for word in line.split():
            if word.startswith(b"=?"):
                assert len(word) <= ENCODED_WORD_MAX, word
    name, got = parseaddr(msg["To"])
    assert got == addr
    assert str(make_header(decode_header(name))) == stored[:120]
    assert dkim.verify(data, dnsfunc=m.dns)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=NAMES)
@example(name="=?utf-8?b??=")  # ASCII that a reader would decode: must be encoded, not shown raw
@example(name="Eve\r\nBcc: victim@third.example" + SMUGGLE)
@example(name="0  0")  # unquoted, a reader folds the two spaces into one
@example(name='Wang  "Xiao\\  Ming"')
def test_hostile_names_from_csv_to_the_wire(mail: Mail, name: str) -> None:
    addr, stored, wire = mail.deliver(name)
    _check_wire(mail, name, addr, stored, wire)


@pytest.mark.parametrize(
    "name",
    ["王\n小明", "Eve\r\nBcc: victim@third.example", "A" + SMUGGLE, "\u202e\u2028李雷😀" * 20],
)
def test_hostile_names_from_xlsx_to_the_wire(mail: Mail, name: str) -> None:
    """An Excel cell with a line break (Alt+Enter) is the common real-world case."""
    addr, stored, wire = mail.deliver(name.replace("\r", ""), xlsx=True)
    _check_wire(mail, name, addr, stored, wire)


def test_lax_server_sees_one_transaction_per_delivery(mail: Mail) -> None:
    """Ten deliveries with smuggling payloads: ten transactions, no third-party RCPT."""
    for k in range(10):
        _addr, _stored, wire = mail.deliver(f"读者{k}{SMUGGLE}")
        assert len(wire) == 1
    rcpts = {r for t in mail.lax.transactions for r in t.rcpts}
    assert "victim@third.example" not in rcpts
    assert all(not c.upper().startswith(b"RCPT TO:<VICTIM") for c in mail.lax.commands)


def test_builder_refuses_crlf_that_got_past_the_entry(mail: Mail) -> None:
    """The second wall: a name with CR/LF written straight into the table (an old row)
    is never put on the wire; that delivery fails, the others go."""
    addr, _stored, _wire = mail.deliver("好人")
    bad = "reader-bad@example.com"
    with session_scope() as s:
        ml_id = s.scalar(select(MailingList.id).where(MailingList.name == "list1"))
        s.execute(
            text(
                "INSERT INTO subscriber (email, name, variant, attributes, status, source, "
                "created_at, updated_at) VALUES (:e, :n, 'zh-Hans', '{}', 'active', 'raw', "
                "now(), now())"
            ),
            {"e": bad, "n": "Eve\r\nBcc: victim@third.example"},
        )
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == bad))
        s.add(Subscription(subscriber_id=sid, list_id=ml_id, status="active"))
        send = Send(
            publication_id=mail.ids["publication"],
            issue_id=mail.ids["issue"],
            list_id=ml_id,
            channel="email",
            state="draft",
            resend_reason="the test sends the issue again on purpose",
        )
        s.add(send)
        s.flush()
        send_id = send.id
    before = len(mail.lax.transactions)
    drive_inline(send_id)
    wire = mail.lax.transactions[before:]
    assert [t.rcpts for t in wire] == [[addr]]
    with session_scope() as s:
        rows = s.execute(
            select(Subscriber.email, Delivery.state, Delivery.last_reply)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.send_id == send_id)
        ).all()
    states = {e: st for e, st, _r in rows}
    reply = next(r for e, _st, r in rows if e == bad)
    assert states == {addr: "sent", bad: "failed"}
    assert reply is not None and "CR/LF" in reply


@pytest.mark.parametrize(
    "field",
    ["from_name", "subject", "list_name", "reply_to", "list_id", "feedback_id"],
)
def test_builder_refuses_crlf_in_every_fixed_header(field: str) -> None:
    values = dict(
        html_body="<p>hi</p>",
        text_body="hi",
        subject="周报",
        from_name="周报",
        from_address="news@example.org",
        list_id="weekly.example.org",
        list_name="周报",
        feedback_id="i1:weekly:newsletter:example.org",
        unsub_base="https://x.example/u/",
        unsub_mailto="unsubscribe@example.org",
        reply_to="editor@example.org",
    )
    values[field] = values[field] + "\r\nBcc: victim@third.example"
    with pytest.raises(HeaderInjection):
        compile_message(**values)  # type: ignore[arg-type]


def test_long_subject_and_from_name_fold_into_short_words() -> None:
    c = compile_message(
        html_body="<p>hi</p>",
        text_body="hi",
        subject="《营商环境与数字经济政策周报》" * 6,
        from_name="示例研究院政策研究室" * 5,
        from_address="news@example.org",
        list_id="weekly.example.org",
        list_name="营商环境政策周报" * 4,
        feedback_id="f",
        unsub_base="https://x.example/u/",
        unsub_mailto="u@example.org",
    )
    head = c.chunks[0]
    assert isinstance(head, bytes)
    words = [w for line in head.split(b"\r\n") for w in line.split() if w.startswith(b"=?")]
    assert len(words) > 6 and all(len(w) <= ENCODED_WORD_MAX for w in words)
    msg = email.message_from_bytes(head + b"\r\n")
    assert str(make_header(decode_header(msg["Subject"]))) == "《营商环境与数字经济政策周报》" * 6


def test_publication_from_name_is_cleaned_where_it_enters(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    seed(0)
    admin = as_role("admin")
    r = admin.client.patch(
        "/api/settings/publication",
        json={"from_name": "周报\r\nBcc: victim@third.example", "name": "周报\u2028X"},
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert r.status_code < 300, r.text
    from newsletter.models import Publication

    with session_scope() as s:
        pub = s.scalars(select(Publication)).first()
        assert pub is not None
        assert pub.from_name == "周报 Bcc: victim@third.example"
        assert pub.name == "周报 X"


def test_settings_from_name_is_cleaned() -> None:
    s = Settings(from_name="周报\r\nBcc: x@y", postal_address="北京\n海淀")
    assert s.from_name == "周报 Bcc: x@y" and s.postal_address == "北京 海淀"


def test_subscribe_form_name_is_cleaned(anon, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    seed(0)
    with session_scope() as s:
        list_id = s.scalar(select(MailingList.id))
    page = anon.get(f"/subscribe/{list_id}")
    assert page.status_code == 200, page.text[:200]
    assert 'name="stamp"' in page.text
    from newsletter.core.safety.signing import sign

    stamp = sign("c", 0, 0, int(clock.timestamp()) - 30)  # a person's form (> 2 s old)
    form = {
        "email": "new@example.com",
        "name": "Eve\r\nBcc: victim@third.example\x00",
        "stamp": stamp,
    }
    r = anon.post(f"/subscribe/{list_id}", data=form)
    assert r.status_code < 500
    with session_scope() as s:
        name = s.scalar(select(Subscriber.name).where(Subscriber.email == "new@example.com"))
    assert name == "Eve Bcc: victim@third.example"


def test_issue_title_with_a_line_break_is_one_subject_line(
    pg_app: Settings, tmp_path: Path
) -> None:
    from newsletter.issues.store import create_issue, render_issue
    from newsletter.models import Rendition
    from tests.security.conftest import issue_text

    path = tmp_path / "issue.md"
    path.write_text(
        issue_text("正文").replace(
            "title: 安全测试周报", 'title: "周报\\r\\nBcc: victim@third.example"'
        ),
        encoding="utf-8",
    )
    with session_scope() as s:
        issue, _w = create_issue(s, path)
        render_issue(s, issue.id)
        subjects = s.scalars(
            select(Rendition.subject).where(Rendition.output == "email_html")
        ).all()
    assert subjects and all("\r" not in x and "\n" not in x for x in subjects)
    assert all(" Bcc: victim@third.example" in x for x in subjects)
