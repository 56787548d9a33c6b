from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.core.errors import TokenError
from newsletter.core.safety.signing import sign, unsubscribe_token, verify

KEY = [b"current-key"]
OLD = [b"old-key"]


def test_round_trip_and_compact() -> None:
    t = sign("d", 123_456_789, keys=KEY)
    assert len(t) <= 32
    assert verify(t, "d", keys=KEY).fields == (123_456_789,)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # altered signature
        lambda t: "d" + "zz" + t[t.index(".") :],  # altered payload (another delivery)
        lambda t: t.replace(".", ""),  # malformed
        lambda t: "",
        lambda t: t + "x" * 80,  # oversized
    ],
)
def test_forged_or_altered_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    t = sign("d", 42, keys=KEY)
    with pytest.raises(TokenError):
        verify(mutate(t), "d", keys=KEY)


def test_wrong_kind_is_refused() -> None:
    t = sign("u", 1, 2, keys=KEY)
    with pytest.raises(TokenError, match="kind"):
        verify(t, "d", keys=KEY)


def test_key_rotation_accepts_old_key_and_signs_with_new() -> None:
    old_token = sign("d", 7, keys=OLD)
    assert verify(old_token, "d", keys=KEY + OLD).fields == (7,)
    with pytest.raises(TokenError):
        verify(old_token, "d", keys=KEY)
    assert sign("d", 7, keys=KEY + OLD) == sign("d", 7, keys=KEY)


def test_unsubscribe_token_defaults_to_all_lists(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    assert verify(unsubscribe_token(5, None), "u").fields == (5, 0)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind_fields=st.sampled_from(["d", "u", "c", "s"]).flatmap(
        lambda k: st.tuples(
            st.just(k), st.lists(st.integers(0, 2**63), min_size=_n(k), max_size=_n(k))
        )
    )
)
def test_signing_from_the_derived_key_states_is_plain_hmac(sqlite_settings, kind_fields) -> None:  # type: ignore[no-untyped-def]
    """Tokens signed with the settings' key (from its precomputed HMAC states, the hot
    path) are the same as those signed with the key itself (a new HMAC each time)."""
    from newsletter.core.config import get_settings

    kind, fields = kind_fields
    assert sign(kind, *fields) == sign(kind, *fields, keys=get_settings().secrets())


def _n(kind: str) -> int:
    return {"d": 1, "u": 2, "c": 3, "s": 1}[kind]


def test_a_new_secret_key_signs_new_tokens(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    """The derived states follow the settings: after the key changes, tokens change."""
    from newsletter.core.config import get_settings, reset_settings

    before = sign("d", 9)
    from pydantic import SecretStr

    new = SecretStr("another-key-" + "x" * 40)
    reset_settings(get_settings().model_copy(update={"secret_key": new}))
    try:
        assert sign("d", 9) != before
        assert verify(sign("d", 9), "d").fields == (9,)
    finally:
        reset_settings(sqlite_settings)
