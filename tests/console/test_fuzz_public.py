"""Hypothesis fuzzing of the public endpoints: pixel, click, unsubscribe, subscribe.

Whatever the token, link id or form body, the answer is never a server error,
and a click never redirects anywhere but a stored link URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.core.config import Settings
from newsletter.core.safety.signing import delivery_token, unsubscribe_token
from newsletter.web.app import create_app

# Path segments: printable text without "/" (which would change the route) plus
# token-shaped strings, so both the router and the token checks are exercised.
segment = st.one_of(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
        min_size=1,
        max_size=80,
    ),
    st.from_regex(r"\Ad[0-9a-z]{1,12}\.[A-Za-z0-9_-]{0,40}\Z"),
    st.from_regex(r"\Au[0-9a-z]{1,8}\.[0-9a-z]{0,8}\.[A-Za-z0-9_-]{0,40}\Z"),
)
link_id = st.one_of(st.integers(-(10**12), 10**12).map(str), segment)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def app_client(console_settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(),
        base_url="https://testserver",
        follow_redirects=False,
        raise_server_exceptions=False,
    ) as c:
        yield c


def _quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


@FUZZ
@given(token=segment)
def test_pixel(app_client: TestClient, token: str) -> None:
    r = app_client.get(f"/o/{_quote(token)}.gif")
    assert r.status_code < 500
    if r.status_code == 200:
        assert r.headers["content-type"] == "image/gif"


@FUZZ
@given(token=segment, link=link_id)
def test_click(app_client: TestClient, token: str, link: str) -> None:
    r = app_client.get(f"/c/{_quote(token)}/{_quote(link)}")
    assert r.status_code < 500
    assert r.status_code != 302 or r.headers["location"].startswith("https://")


@FUZZ
@given(
    token=segment,
    form=st.dictionaries(
        st.sampled_from(["scope", "List-Unsubscribe", "x"]), st.text(max_size=30), max_size=3
    ),
)
def test_unsubscribe(app_client: TestClient, token: str, form: dict[str, str]) -> None:
    assert app_client.get(f"/u/{_quote(token)}").status_code < 500
    assert app_client.post(f"/u/{_quote(token)}", data=form).status_code < 500


@FUZZ
@given(
    list_id=link_id,
    form=st.dictionaries(
        st.sampled_from(["email", "name", "variant", "stamp", "website", "list"]),
        st.text(max_size=60),
        max_size=6,
    ),
)
def test_subscribe(app_client: TestClient, list_id: str, form: dict[str, str]) -> None:
    assert app_client.get(f"/subscribe/{_quote(list_id)}").status_code < 500
    assert app_client.post(f"/subscribe/{_quote(list_id)}", data=form).status_code < 500


def test_valid_tokens_for_missing_rows_are_not_errors(app_client: TestClient) -> None:
    assert app_client.get(f"/o/{delivery_token(999999)}.gif").status_code == 200
    assert app_client.get(f"/c/{delivery_token(999999)}/1").status_code == 404
    assert app_client.get(f"/u/{unsubscribe_token(999999, 1)}").status_code < 500
    assert (
        app_client.post(
            f"/u/{unsubscribe_token(999999, None)}", data={"List-Unsubscribe": "One-Click"}
        ).status_code
        < 500
    )
