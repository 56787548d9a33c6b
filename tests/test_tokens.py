from __future__ import annotations

import pytest

from newsletter.errors import TokenError
from newsletter.tokens import sign, unsubscribe_token, verify

KEY = [b"current-key"]
OLD = [b"old-key"]


def test_round_trip_and_compact() -> None:
    t = sign("d", 123_456_789, keys=KEY)
    assert len(t) <= 32
    assert verify(t, "d", keys=KEY).fields == (123_456_789,)


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # altered signature
    lambda t: "d" + "zz" + t[t.index("."):],  # altered payload (another delivery)
    lambda t: t.replace(".", ""),  # malformed
    lambda t: "",
    lambda t: t + "x" * 80,  # oversized
])
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
