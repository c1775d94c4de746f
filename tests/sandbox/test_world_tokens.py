"""The simulated cTrader ID's token rules: a rotation kills the cTID's access tokens, a new consent its refresh
tokens; other cTIDs keep theirs, and a restored world keeps the same rules."""

from __future__ import annotations

from sandbox.world import AccessToken, Grant, World


def _issue(world: World, user_id: int) -> tuple[str, str]:
    issued = world.issue_tokens(Grant(user_id, (), "accounts"))
    return str(issued["accessToken"]), str(issued["refreshToken"])


def test_a_rotation_revokes_every_access_token_of_the_ctid_and_no_other() -> None:
    world = World()
    first_access, first_refresh = _issue(world, 7001)
    other_access, other_refresh = _issue(world, 7002)

    rotated = world.rotate(first_refresh)

    assert rotated is not None
    assert world.grant_for_access_token(first_access) is None
    assert world.grant_for_access_token(str(rotated["accessToken"])) is not None
    assert world.grant_for_access_token(other_access) is not None
    assert other_refresh in world.refresh_tokens
    # A used refresh token does not rotate twice; the new one does, and kills the access token it came with.
    assert world.rotate(first_refresh) is None
    again = world.rotate(str(rotated["refreshToken"]))
    assert again is not None
    assert world.grant_for_access_token(str(rotated["accessToken"])) is None


def test_a_new_consent_kills_the_earlier_refresh_tokens_of_its_ctid_only() -> None:
    world = World()
    _, earlier = _issue(world, 7001)
    _, other = _issue(world, 7002)

    _, latest = _issue(world, 7001)

    assert earlier not in world.refresh_tokens
    assert world.rotate(earlier) is None
    assert latest in world.refresh_tokens
    assert other in world.refresh_tokens


def test_restored_tokens_follow_the_same_rules() -> None:
    saved = World()
    access, refresh = _issue(saved, 7001)
    other_access, other_refresh = _issue(saved, 7002)
    world = World()

    world.tokens_restore(
        access={t: AccessToken(v.grant, v.expires_at, v.revoked) for t, v in saved.access_tokens.items()},
        refresh=dict(saved.refresh_tokens),
        used=set(saved.used_refresh_tokens),
    )

    assert world.rotate(refresh) is not None
    assert world.grant_for_access_token(access) is None
    assert world.grant_for_access_token(other_access) is not None
    _issue(world, 7002)
    assert other_refresh not in world.refresh_tokens
