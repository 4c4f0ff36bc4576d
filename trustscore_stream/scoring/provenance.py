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


# Ownership events kept in event-time order (the ordering horizon, docs/scoring.md §7): a late
# move among them is put in its place and custody is recomputed; older ones are settled.
MOVES_MAX = 8

MINT, MOVE, BURN = 0, 1, 2  # a mint sorts before a move in the same second, a burn after


class Move(Struct, frozen=True, array_like=True, gc=False):
    """One ownership event: the token leaves `frm` and reaches `to` (mint, transfer, sale),
    or is burned."""

    t: int
    kind: int
    to: str = ""
    frm: str = ""


def _move_key(m: Move) -> tuple[int, int, str, str]:
    return m.t, m.kind, m.to, m.frm


def _fold(c: Custody, moves: tuple[Move, ...]) -> Custody:
    """Fold ownership events in event-time order. Within one second (one block can move a
    token twice: seller → marketplace → buyer) the chain decides: next comes the move that
    leaves the current owner, then a mint, else the first by content."""
    n = len(moves)
    i = 0
    while i < n:
        j = i + 1
        while j < n and moves[j].t == moves[i].t:
            j += 1
        if j == i + 1:
            c = _step(c, moves[i])
        else:
            group = list(moves[i:j])
            while group:
                k = next(
                    (
                        k
                        for k, m in enumerate(group)
                        if (m.kind != MINT and c.owner and m.frm == c.owner)
                    ),
                    -1,
                )
                if k < 0:
                    k = next((k for k, m in enumerate(group) if m.kind == MINT), 0)
                c = _step(c, group.pop(k))
        i = j
    return c


class Custody(Struct, frozen=True, array_like=True, gc=False):
    """Custody after a prefix of the ownership events, folded in event-time order."""

    owner: str = ""
    since: int = 0
    chain: tuple[str, ...] = ()
    changes: int = 0
    holds: int = 0
    short: int = 0
    burned: bool = False


_NO_CUSTODY = Custody()


def _step(c: Custody, m: Move) -> Custody:
    """One ownership event on custody (events come in event-time order)."""
    if m.kind == MINT:
        if c.owner or c.burned:
            return c  # a late mint: custody is already known
        return Custody(m.to, m.t, c.chain, c.changes, c.holds, c.short, c.burned)
    if c.burned:
        return c
    chain = (*c.chain, c.owner)[-CHAIN_MAX:] if c.owner else c.chain
    if m.kind == BURN:
        return Custody("", m.t, chain, c.changes, c.holds, c.short, True)
    if m.to == c.owner:
        return c  # already there: a sale's on-chain leg
    holds, short = c.holds, c.short
    if c.owner and m.t >= c.since:
        holds += 1
        short += 1 if m.t - c.since < SHORT_HOLD else 0
    return Custody(m.to, m.t, chain, c.changes + 1, holds, short, False)


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
        "creator_at": "ct",
        "moves": "mv",
        "settled": "st",
    },
):
    """Custody as of every ownership event seen: `settled` (the events that left `moves`,
    folded in order) followed by `moves` (the last MOVES_MAX, in event-time order). The
    custody fields are that fold's result, kept for readers."""

    minted_at: int | None = None
    minter: str = ""  # `to` of the earliest mint
    creator: str = ""  # the creator named by the latest mint naming one
    owner: str = ""
    since: int = 0
    chain: tuple[str, ...] = ()  # previous owners, newest last
    changes: int = 0
    holds: int = 0  # completed holds
    short: int = 0  # completed holds shorter than SHORT_HOLD
    burned: bool = False
    creator_at: int | None = None  # event time of the mint that named `creator`
    moves: tuple[Move, ...] = ()
    settled: Custody | None = None  # None: nothing settled yet, or a state from before `moves`


OwnerChange = tuple[str | None, str | None]  # (token leaves, token reaches)


def _custody(p: Provenance) -> Custody:
    return Custody(p.owner, p.since, p.chain, p.changes, p.holds, p.short, p.burned)


def _record(p: Provenance, m: Move) -> tuple[Provenance, OwnerChange | None]:
    """Put an ownership event in its event-time place; recompute custody if it is not last."""
    moves = p.moves
    if p.settled is not None or moves:
        settled = p.settled if p.settled is not None else _NO_CUSTODY
    else:
        settled = _custody(p)  # nothing kept yet: what is known so far is settled
    key = _move_key(m)
    if not moves or m.t > moves[-1].t:
        moves = (*moves, m)
        custody = _step(_custody(p) if p.moves else settled, m)
    else:
        i = len(moves)
        while i > 0 and key < _move_key(moves[i - 1]):
            i -= 1
        if i > 0 and key == _move_key(moves[i - 1]):
            return p, None  # the same ownership event again (e.g. a sale and its leg)
        # Before the first kept event of a token that already settled some: outside the
        # horizon, folded right after the settled part (docs/scoring.md §7).
        moves = (*moves[:i], m, *moves[i:])
        custody = _fold(settled, moves)
    if len(moves) > MOVES_MAX:
        # Settle the oldest second as a whole, so its chain order is decided with all of it
        # (if one second holds them all, the oldest by content goes).
        j = 1
        while j < len(moves) and moves[j].t == moves[0].t:
            j += 1
        if j == len(moves):
            j = len(moves) - MOVES_MAX
        settled = _fold(settled, moves[:j])
        moves = moves[j:]
    if (
        custody.owner == p.owner
        and custody.since == p.since
        and custody.changes == p.changes
        and custody.holds == p.holds
        and custody.short == p.short
        and custody.burned == p.burned
        and custody.chain == p.chain
    ):
        # Custody unchanged (a leg, a repeated or a late mint): only the kept events moved.
        return replace(p, moves=moves, settled=settled), None
    return (
        replace(
            p,
            owner=custody.owner,
            since=custody.since,
            chain=custody.chain,
            changes=custody.changes,
            holds=custody.holds,
            short=custody.short,
            burned=custody.burned,
            moves=moves,
            settled=settled,
        ),
        (p.owner or None, custody.owner or None)
        if custody.owner != p.owner or custody.burned != p.burned
        else None,
    )


def record_mint(
    p: Provenance, to: str, creator: str | None, t: int
) -> tuple[Provenance, OwnerChange | None]:
    """The earliest mint (by time, then address) names the minter; the latest mint naming a
    creator (by time, then address) names the creator, whatever order the mints arrive in."""
    if p.minted_at is None or (t, to) < (p.minted_at, p.minter):
        p = replace(p, minted_at=t, minter=to)
    if creator:
        known = p.creator_at if p.creator_at is not None else p.minted_at
        if not p.creator or known is None or (t, creator) >= (known, p.creator):
            p = replace(p, creator=creator, creator_at=t)
    return _record(p, Move(t, MINT, to))


def record_move(p: Provenance, frm: str, to: str, t: int) -> tuple[Provenance, OwnerChange | None]:
    """A transfer or sale moved the token from `frm` to `to` at `t`."""
    return _record(p, Move(t, MOVE, to, frm))


def record_burn(p: Provenance, frm: str, t: int) -> tuple[Provenance, OwnerChange | None]:
    return _record(p, Move(t, BURN, "", frm))


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
