"""The fast address path agrees with email-validator on everything it accepts."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsletter.audience.addresses import _FAST, AddressError, normalise

LOCAL = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,20}", fullmatch=True)
LABEL = st.from_regex(r"[A-Za-z0-9-]{1,12}", fullmatch=True)
TLD = st.from_regex(r"[A-Za-z]{2,6}", fullmatch=True)


@settings(max_examples=400)
@given(LOCAL, st.lists(LABEL, min_size=1, max_size=3), TLD)
@example("0", ["00--0"], "AA")  # IDNA reserves "--" at positions 3-4 of a label
def test_fast_path_never_accepts_what_email_validator_refuses(local, labels, tld) -> None:  # type: ignore[no-untyped-def]
    addr = f"{local}@{'.'.join(labels)}.{tld}"
    try:
        ours: str | None = normalise(addr)
    except AddressError:
        ours = None
    try:
        info = validate_email(addr, check_deliverability=False)
        theirs: str | None = f"{info.local_part.lower()}@{info.ascii_domain.lower()}"
    except EmailNotValidError:
        theirs = None
    if _FAST.fullmatch(addr.lower()):
        assert ours == theirs


@pytest.mark.parametrize(
    "addr,expected",
    [
        ("Zhang.Wei@Example.COM", "zhang.wei@example.com"),
        ("张三@例子.中国", "张三@xn--fsqu00a.xn--fiqs8s"),
        ("a@xn--fsqu00a.xn--fiqs8s", "a@xn--fsqu00a.xn--fiqs8s"),
    ],
)
def test_normalisation(addr: str, expected: str) -> None:
    assert normalise(addr) == expected


@pytest.mark.parametrize(
    "addr", ["a..b@example.com", "a@example.test", "a@-x.com", "a@x", "a b@x.com", ""]
)
def test_invalid(addr: str) -> None:
    with pytest.raises(AddressError):
        normalise(addr)
