"""provenance: mint origin, chain of custody, holding durations, flagged owners (§5.2)."""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct
from msgspec.structs import replace

from trustscore_stream.scoring.common import DAY, clamp, sat
from trustscore_stream.scoring.model import FactorValue, no_data

# Origin values: how sure we are the token is what it claims to be, before custody.
ORIGIN_VERIFIED_CREATOR = 100.0  # verified collection, minted by its verified creator
ORIGIN_VERIFIED = 90.0  # verified collection, mint creator not named
ORIGIN_MINT_SEEN = 75.0  # unverified collection, but we saw the token being minted
ORIGIN_UNKNOWN = 65.0  # no mint observed: history starts mid-chain
ORIGIN_REJECTED = 50.0  # verification explicitly false
ORIGIN_CREATOR_MISMATCH = 30.0  # mint names another creator than the verified one (copymint)
# Holds shorter than a day are churn (flipping, laundering through hops).
SHORT_HOLD = DAY
# Churn costs at most 30 points: it is suggestive, not proof.
CHURN_MAX = 30.0
# Holds needed before the short-hold fraction counts in full.
CHURN_MIN_HOLDS = 3.0
# A confidently flagged owner costs up to 60 points: tainted custody is close to fraud.
FLAG_MAX = 60.0
# Each step back in the chain weakens the taint.
FLAG_DEPTH_DECAY = 0.8
# Previous owners remembered.
CHAIN_MAX = 8
# Ownership changes for 63 % of the custody part of the confidence.
CHANGES_CONFIDENCE_SCALE = 3.0


class Provenance(
    Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename={
        "minted_at": "m",
        "minter": "mt",
        "creator": "cr",
        "owner": "o",
        "since": "os",
        "chain": "ch",
        "changes": "n",
        "holds": "h",
        "short": "sh",
        "burned": "b",
    },
):
    minted_at: int | None = None
    minter: str = ""
    creator: str = ""  # the mint payload's creator
    owner: str = ""
    since: int = 0
    chain: tuple[str, ...] = ()  # previous owners, newest last
    changes: int = 0
    holds: int = 0  # completed holds
    short: int = 0  # completed holds shorter than SHORT_HOLD
    burned: bool = False


OwnerChange = tuple[str | None, str | None]  # (token leaves, token reaches)


def record_mint(
    p: Provenance, to: str, creator: str | None, t: int
) -> tuple[Provenance, OwnerChange | None]:
    minted_at = t if p.minted_at is None or t < p.minted_at else p.minted_at
    p = replace(p, minted_at=minted_at, minter=p.minter or to, creator=creator or p.creator)
    if p.owner or p.burned:
        return p, None  # a late mint: custody is already known
    return replace(p, owner=to, since=t), (None, to)


def record_move(p: Provenance, to: str, t: int) -> tuple[Provenance, OwnerChange | None]:
    """A transfer or sale moved the token to `to`; no change if it is already there."""
    if p.burned or to == p.owner:
        return p, None
    holds, short = p.holds, p.short
    if p.owner and t >= p.since:
        holds += 1
        short += 1 if t - p.since < SHORT_HOLD else 0
    chain = (*p.chain, p.owner)[-CHAIN_MAX:] if p.owner else p.chain
    old = p.owner or None
    p = replace(p, owner=to, since=t, chain=chain, changes=p.changes + 1, holds=holds, short=short)
    return p, (old, to)


def record_burn(p: Provenance, t: int) -> tuple[Provenance, OwnerChange | None]:
    if p.burned:
        return p, None
    old = p.owner or None
    chain = (*p.chain, p.owner)[-CHAIN_MAX:] if p.owner else p.chain
    return replace(p, owner="", since=t, chain=chain, burned=True), (old, None)


def chain_wallets(p: Provenance) -> tuple[str, ...]:
    """Current owner first, then previous owners, newest first (addresses)."""
    owners = ([p.owner] if p.owner else []) + list(reversed(p.chain))
    seen: list[str] = []
    for a in owners:
        if a not in seen:
            seen.append(a)
    return tuple(seen)


def value(
    p: Provenance,
    *,
    verified: bool | None,
    verified_creator: str,
    flags: Mapping[str, tuple[float, str]],
    now: int,
) -> FactorValue:
    """`flags`: address → (risk 0–1, description) for flagged wallets only."""
    if p.minted_at is None and p.changes == 0 and not p.owner and not p.burned:
        return no_data()
    evidence: list[str] = []
    if verified is True:
        if verified_creator and p.creator and p.creator != verified_creator:
            origin = ORIGIN_CREATOR_MISMATCH
            evidence.append(f"minted by {p.creator}, not the verified creator {verified_creator}")
        elif verified_creator and p.creator == verified_creator:
            origin = ORIGIN_VERIFIED_CREATOR
            evidence.append(f"minted by the verified creator {verified_creator}")
        else:
            origin = ORIGIN_VERIFIED
            evidence.append("collection verified")
    elif verified is False:
        origin = ORIGIN_REJECTED
        evidence.append("collection explicitly not verified")
    elif p.minted_at is not None:
        origin = ORIGIN_MINT_SEEN
        evidence.append("mint observed; collection not verified")
    else:
        origin = ORIGIN_UNKNOWN
        evidence.append("no mint observed: history starts mid-chain")
    flag = 0.0
    if flags:
        flagged: list[tuple[float, str]] = []
        for depth, address in enumerate(chain_wallets(p)):
            hit = flags.get(address)
            if hit is None:
                continue
            risk, desc = hit
            weight = max(0.0, min(1.0, risk)) * FLAG_DEPTH_DECAY**depth
            flag = max(flag, weight)
            who = (
                "current owner" if depth == 0 and address == p.owner else "ownership chain includes"
            )
            flagged.append((weight, f"{who} flagged wallet {address} ({desc})"))
        flagged.sort(key=lambda f: (-f[0], f[1]))
        evidence[:0] = [text for _, text in flagged]
    churn = 0.0
    if p.holds > 0:
        churn = CHURN_MAX * (p.short / p.holds) * min(1.0, p.holds / CHURN_MIN_HOLDS)
        if p.short:
            evidence.append(f"{p.short} of {p.holds} holds shorter than 24h")
    if p.burned:
        evidence.append("burned")
    confidence = (
        0.4 + 0.3 * (p.minted_at is not None) + 0.3 * sat(p.changes, CHANGES_CONFIDENCE_SCALE)
    )
    return FactorValue(clamp(origin - churn - FLAG_MAX * flag), confidence, tuple(evidence))


# Collection-level provenance is its verification status.
COLL_VERIFIED_CREATOR = 95.0  # verified, creator named
COLL_VERIFIED = 90.0
COLL_REJECTED = 40.0  # explicitly not verified: a marketplace looked and said no
COLL_UNVERIFIED = 60.0  # not (yet) verified, mints observed
COLL_VERIFICATION_CONFIDENCE = 0.8  # a verification is a decision, but not infallible
COLL_MINTS_CONFIDENCE = 0.3  # silence about verification says little


def collection_value(
    *, verified: bool | None, creator: str, creator_verified: bool, mints: int
) -> FactorValue:
    if verified is True:
        if creator_verified and creator:
            return FactorValue(
                COLL_VERIFIED_CREATOR,
                COLL_VERIFICATION_CONFIDENCE,
                (f"collection verified for creator {creator}",),
            )
        return FactorValue(COLL_VERIFIED, COLL_VERIFICATION_CONFIDENCE, ("collection verified",))
    if verified is False:
        return FactorValue(
            COLL_REJECTED, COLL_VERIFICATION_CONFIDENCE, ("collection explicitly not verified",)
        )
    if mints > 0:
        return FactorValue(
            COLL_UNVERIFIED,
            COLL_MINTS_CONFIDENCE,
            (f"{mints} mints observed; collection not verified",),
        )
    return no_data()
