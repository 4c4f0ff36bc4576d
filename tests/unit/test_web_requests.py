"""Request parsing of the web layer: entity ids, stream channels and user tokens."""

from __future__ import annotations

import jwt
import pytest
from aiohttp.test_utils import make_mocked_request

from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.web.auth import Unauthorized, issue_token, user_id
from trustscore_stream.web.stream import BadRequest, requested_channels

SECRET = "a-test-secret-long-enough-for-hs256-and-for-hs512-too-64-bytes!!"
ADDRESS = "0x" + "ab" * 20


def test_entity_ids_are_normalised_and_trailing_newlines_rejected() -> None:
    assert str(parse_entity_id(f"nft:ETH:{ADDRESS.upper().replace('0X', '0x')}:007")) == (
        f"nft:eth:{ADDRESS}:7"
    )
    for bad in (f"nft:eth:{ADDRESS}:7\n", f"collection:eth:{ADDRESS}:1", "wallet:eth:0x12"):
        with pytest.raises(InvalidEntityId):
            parse_entity_id(bad)


def test_tokens_verify_and_bad_ones_are_refused() -> None:
    assert user_id(issue_token("u1", SECRET), SECRET) == "u1"
    expired = jwt.encode({"sub": "u1", "exp": 1}, SECRET, "HS256")
    no_sub = jwt.encode({"name": "u1"}, SECRET, "HS256")
    other_alg = jwt.encode({"sub": "u1"}, SECRET, "HS512")
    for token in (expired, no_sub, other_alg, "not-a-jwt", issue_token("u1", SECRET + "x")):
        with pytest.raises(Unauthorized):
            user_id(token, SECRET)
    with pytest.raises(Unauthorized, match="not configured"):
        user_id(issue_token("u1", SECRET), None)


def channels(path: str, headers: dict[str, str] | None = None) -> tuple[frozenset[str], str | None]:
    return requested_channels(make_mocked_request("GET", path, headers=headers), SECRET)


def test_stream_channels() -> None:
    collection = f"collection:eth:{ADDRESS}"
    assert channels(f"/s?entity={collection.replace('ab', 'AB')}&all=1") == (
        frozenset({f"collection:eth:{ADDRESS}", "*"}),
        None,
    )
    token = issue_token("u7", SECRET)
    assert channels("/s?user=me", {"Authorization": f"Bearer {token}"}) == (
        frozenset({"user:u7"}),
        "u7",
    )
    assert channels(f"/s?user=me&access_token={token}") == (frozenset({"user:u7"}), "u7")
    # An authenticated entity stream counts against the user's limit but gets no user channel.
    assert channels(f"/s?entity={collection}", {"Authorization": f"Bearer {token}"})[1] == "u7"


@pytest.mark.parametrize(
    ("path", "headers", "status", "error"),
    [
        ("/s", None, 400, "no_channel"),
        ("/s?entity=nft:eth:0x1:1", None, 400, "invalid_entity_id"),
        ("/s?user=u7", None, 400, "invalid_user"),
        ("/s?user=me", None, 401, "unauthorized"),
        ("/s?user=me", {"Authorization": "Basic dTpw"}, 401, "unauthorized"),
        ("/s?user=me&access_token=garbage", None, 401, "unauthorized"),
        (
            "/s?" + "&".join(f"entity=collection:eth:{ADDRESS}" for _ in range(101)),
            None,
            400,
            "too_many_entities",
        ),
    ],
)
def test_bad_stream_requests(
    path: str, headers: dict[str, str] | None, status: int, error: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        channels(path, headers)
    assert (raised.value.status, raised.value.error) == (status, error)
