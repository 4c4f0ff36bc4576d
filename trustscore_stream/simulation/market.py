"""The simulated NFT market: collections, tokens, wallets, and their ordinary activity.

Heavy tails, as in real NFT markets: collection popularity follows Zipf's law (rank r gets
weight 1/r, so the top 10 % of 100 collections draw about 56 % of the activity), wallets
trade with Pareto-distributed intensity (a few whales make a large share of the purchases
and so hold many tokens), and within a collection a few "hot" tokens change hands far more
often than the rest. Every collection has a floor that drifts as a mean-reverting geometric
random walk; sales happen near the floor (times the token's rarity and a small premium);
sellers are always the current owners, so ownership stays consistent event after event.

Scenarios (scenarios.py) act on this state too: they lock the tokens they script, move the
floor or the mood of a collection, and the ordinary activity follows.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from trustscore_stream.simulation.clock import DAY_MS, HOUR_MS, MINUTE_MS
from trustscore_stream.simulation.envelopes import (
    Envelope,
    EnvelopeFactory,
    collection_entity,
    nft_entity,
)

# Shares of the ordinary activity (each action makes one event; a sale may add its
# on-chain transfer leg).
MIX: tuple[tuple[str, float], ...] = (
    ("sale", 0.27),
    ("listing", 0.22),
    ("market_data", 0.12),
    ("social_signal", 0.11),
    ("transfer", 0.10),
    ("mint", 0.03),
    ("metadata_update", 0.05),
    ("burn", 0.004),
)
# Honest buyers seldom buy back a token they sold recently (one of its last 3 owners):
# only this share of such draws stands (the rest pick another buyer).
PREVIOUS_OWNERS = 3
BUYBACK_SHARE = 0.1
# Free transfers mostly move a token between a holder's own wallets (to a vault and back),
# the rest are gifts or OTC deals with other traders.
VAULT_SHARE = 0.7
# Share of sales whose on-chain transfer leg is also observed (same tx hash and time).
LEG_SHARE = 0.3
# Sales paid in WETH (accepted offers) rather than ETH; the model treats them alike.
WETH_SHARE = 0.15
# Collections still minting when the simulation starts, and how much of them is minted.
LAUNCHING_SHARE = 0.15
LAUNCHING_MINTED = 0.3
# Collection supply grows with popularity, a little less than in proportion (popular
# collections are large, and their tokens also trade a little more often).
SIZE_EXPONENT = 0.8
# Wallet activity: Pareto shape 1.16 is the "80/20" tail, capped at 200× the least active.
WALLET_CAP = 200.0
WALLET_PARETO = 1.16
# Floor dynamics per day: volatility range, drift spread, pull back to the base level.
FLOOR_VOL = (0.03, 0.10)
FLOOR_DRIFT_SD = 0.01
FLOOR_REVERSION = 0.1
# Social mood: each collection's mean sentiment and the spread of single signals.
SENTIMENT_MEAN = 0.15
SENTIMENT_SD = 0.25
SIGNAL_SD = 0.2
# The "last 24 h" statistics of market data decay with this time constant.
STATS_TAU_MS = DAY_MS
NON_CRITICAL_FIELDS: tuple[tuple[str, ...], ...] = (
    ("attributes",),
    ("description",),
    ("external_url",),
    ("attributes", "description"),
)
REVEAL_FIELDS = ["image", "name", "attributes"]
# Mints followed by a reveal of their metadata; ordinary updates that change the artwork.
REVEAL_SHARE = 0.3
ART_CHANGE_SHARE = 0.03


def address(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(160):040x}"


@dataclass(frozen=True, slots=True)
class MarketShape:
    collections: int = 100
    nfts: int = 10_000
    wallets: int = 5_000

    def __post_init__(self) -> None:
        if self.collections < 1:
            raise ValueError("the market needs at least 1 collection")
        if self.nfts < 10 * self.collections:
            raise ValueError(
                f"{self.nfts} NFTs for {self.collections} collections: give every "
                "collection at least 10 (--nfts ≥ 10 × --collections)"
            )
        if self.wallets < 50:
            raise ValueError("the market needs at least 50 wallets")


@dataclass(slots=True, eq=False)
class Collection:
    contract: str
    creator: str
    popularity: float
    size: int
    minted: int  # tokens 0..minted-1 exist (minted in order)
    owners: list[str]  # "" = not minted yet, or burned
    hot_cum: list[float]  # cumulative hotness: how often each token trades
    rarity: list[float]  # price multiple of each token over the floor
    mint_price: float
    base_log_floor: float
    log_floor: float
    floor_t: int
    vol: float  # daily log volatility of the floor
    drift: float  # daily log drift of the floor
    sentiment: float  # mean sentiment of what is said about it
    mentions: float  # typical mentions per signal
    scripted: bool = False  # entirely run by a scenario (no ordinary activity)
    verified: bool = False
    holders: dict[str, int] = field(default_factory=dict)
    previous: dict[int, tuple[str, ...]] = field(default_factory=dict)  # last owners per token
    locked: set[int] = field(default_factory=set)  # tokens a scenario is scripting
    stats_t: int = 0
    sales_24h: float = 0.0
    volume_24h: float = 0.0

    @property
    def entity(self) -> str:
        return collection_entity(self.contract)

    def token_id(self, i: int) -> str:
        return str(i + 1)

    def nft(self, i: int) -> str:
        return nft_entity(self.contract, self.token_id(i))

    def floor(self, t: int, rng: random.Random) -> float:
        """The floor at `t`: the random walk advanced lazily from the last time it was read."""
        if t > self.floor_t:
            days = (t - self.floor_t) / DAY_MS
            pull = -FLOOR_REVERSION * (self.log_floor - self.base_log_floor) * days
            step = self.drift * days + pull + self.vol * math.sqrt(days) * rng.gauss(0.0, 1.0)
            self.log_floor += step
            self.floor_t = t
        return math.exp(self.log_floor)

    def set_floor(self, value: float, t: int, *, new_base: bool = False) -> None:
        self.log_floor = math.log(value)
        self.floor_t = max(self.floor_t, t)
        if new_base:
            self.base_log_floor = self.log_floor

    def move(self, i: int, to: str) -> str:
        """Token i goes to `to` ("" = burned); returns the previous owner."""
        old = self.owners[i]
        if old:
            self.previous[i] = (*self.previous.get(i, ())[-(PREVIOUS_OWNERS - 1) :], old)
            left = self.holders[old] - 1
            if left:
                self.holders[old] = left
            else:
                del self.holders[old]
        if to:
            self.holders[to] = self.holders.get(to, 0) + 1
        self.owners[i] = to
        return old

    def record_sale(self, price: float, t: int) -> None:
        self._decay_stats(t)
        self.sales_24h += 1.0
        self.volume_24h += price

    def _decay_stats(self, t: int) -> None:
        if t > self.stats_t:
            keep = math.exp(-(t - self.stats_t) / STATS_TAU_MS)
            self.sales_24h *= keep
            self.volume_24h *= keep
            self.stats_t = t

    def stats(self, t: int) -> tuple[float, int]:
        self._decay_stats(t)
        return self.volume_24h, round(self.sales_24h)


class Market:
    """The market's state and its ordinary activity (everything no scenario scripts)."""

    def __init__(
        self, shape: MarketShape, rng: random.Random, factory: EnvelopeFactory, start: int
    ) -> None:
        self.shape = shape
        self.rng = rng
        self.make = factory
        self.wallets = [address(rng) for _ in range(shape.wallets)]
        intensity = [min(rng.paretovariate(WALLET_PARETO), WALLET_CAP) for _ in self.wallets]
        self._wallet_cum = list(accumulate(intensity))
        self.collections: list[Collection] = []
        self._vaults: dict[str, str] = {}  # wallet → its owner's other wallet, both ways
        self._pool: list[Collection] = []  # collections with ordinary activity
        self._pool_cum: list[float] = []
        self._quote_cum: list[float] = []
        popularity = [1.0 / rank for rank in range(1, shape.collections + 1)]
        sizes = _split(shape.nfts, [p**SIZE_EXPONENT for p in popularity], minimum=10)
        for weight, size in zip(popularity, sizes, strict=True):
            launching = rng.random() < LAUNCHING_SHARE
            minted = max(1, round(size * LAUNCHING_MINTED)) if launching else size
            # Popular collections are dearer: floor ~ 0.05–5 ETH, higher near the head.
            floor = math.exp(rng.gauss(math.log(0.3), 0.9)) * (1.0 + 4.0 * math.sqrt(weight))
            self.add_collection(
                size=size,
                minted=minted,
                popularity=weight,
                floor=floor,
                t=start,
                scripted=False,
            )
        self._rebuild_pool()

    # --- construction ----------------------------------------------------------------

    def add_collection(
        self,
        *,
        size: int,
        minted: int,
        popularity: float,
        floor: float,
        t: int,
        scripted: bool,
        creator: str | None = None,
    ) -> Collection:
        rng = self.rng
        hot = [rng.lognormvariate(0.0, 0.7) for _ in range(size)]
        collection = Collection(
            contract=address(rng),
            creator=creator or address(rng),
            popularity=popularity,
            size=size,
            minted=minted,
            owners=[""] * size,
            hot_cum=list(accumulate(hot)),
            rarity=[min(rng.lognormvariate(0.0, 0.3), 4.0) for _ in range(size)],
            mint_price=floor * rng.uniform(0.3, 0.8),
            base_log_floor=math.log(floor),
            log_floor=math.log(floor),
            floor_t=t,
            vol=rng.uniform(*FLOOR_VOL),
            drift=rng.gauss(0.0, FLOOR_DRIFT_SD),
            sentiment=max(-0.8, min(0.8, rng.gauss(SENTIMENT_MEAN, SENTIMENT_SD))),
            mentions=3.0 + 200.0 * popularity * rng.uniform(0.5, 1.5),
            scripted=scripted,
            stats_t=t,
        )
        for i in range(minted):
            collection.move(i, self.trader())
        self.collections.append(collection)
        return collection

    def _rebuild_pool(self) -> None:
        self._pool = [c for c in self.collections if not c.scripted]
        self._pool_cum = list(accumulate(c.popularity for c in self._pool))
        # Market data aggregators poll busy collections more often, but poll all of them.
        self._quote_cum = list(accumulate(math.sqrt(c.popularity) for c in self._pool))

    # --- draws -----------------------------------------------------------------------

    def trader(self) -> str:
        cum = self._wallet_cum
        return self.wallets[bisect_right(cum, self.rng.random() * cum[-1])]

    def trader_except(self, *avoid: str) -> str:
        while True:
            wallet = self.trader()
            if wallet not in avoid:
                return wallet

    def collection(self) -> Collection:
        cum = self._pool_cum
        return self._pool[bisect_right(cum, self.rng.random() * cum[-1])]

    def quoted_collection(self) -> Collection:
        cum = self._quote_cum
        return self._pool[bisect_right(cum, self.rng.random() * cum[-1])]

    def any_token(self, c: Collection, tries: int = 64) -> int | None:
        """A tradable token of c, all alike (scenarios pick ordinary tokens)."""
        for _ in range(tries):
            i = self.rng.randrange(c.minted)
            if c.owners[i] and i not in c.locked:
                return i
        return None

    def token(self, c: Collection, tries: int = 8) -> int | None:
        """A tradable token of c (minted, not burned, not scripted), hot ones more often."""
        cum = c.hot_cum
        for _ in range(tries):
            i = bisect_right(cum, self.rng.random() * cum[-1])
            if i < c.minted and c.owners[i] and i not in c.locked:
                return i
        return None

    def busiest(self, count: int) -> list[Collection]:
        return sorted(self._pool, key=lambda c: -c.popularity)[:count]

    def ranked(self) -> list[Collection]:
        """Ordinary collections, most popular first."""
        return self.busiest(len(self._pool))

    def fresh_wallet(self) -> str:
        """A wallet that has not traded in this market before (scenario actors)."""
        return address(self.rng)

    def price(self, c: Collection, i: int, t: int) -> float:
        """What token i of c sells for now: floor × rarity × a small premium."""
        premium = math.exp(abs(self.rng.gauss(0.0, 0.12)))
        return c.floor(t, self.rng) * c.rarity[i] * premium

    # --- ordinary activity -----------------------------------------------------------

    def action(self, kind: str, t: int) -> list[tuple[int, Envelope]]:
        """One ordinary action at t: its event, and maybe a follow-up event a little later."""
        if kind == "market_data":
            return [(t, self.market_data(self.quoted_collection(), t))]
        c = self.collection()
        if kind == "social_signal":
            return [(t, self._social(c, t))]
        if kind == "mint":
            minted = self._mint(t)
            if minted:
                return minted
            kind = "sale"  # everything is minted: the market trades instead
        i = self.token(c)
        if i is None:  # nothing tradable drawn: a quote is always possible
            return [(t, self.market_data(self.quoted_collection(), t))]
        if kind == "sale":
            return self._sale(c, i, t)
        if kind == "listing":
            price = self.price(c, i, t) * self.rng.uniform(1.0, 1.5)
            owner = c.owners[i]
            return [(t, self.make.listing(t, c.contract, c.token_id(i), owner, price, self._mp()))]
        if kind == "transfer":
            owner = c.owners[i]
            to = self.vault(owner) if self.rng.random() < VAULT_SHARE else self.trader_except(owner)
            frm = c.move(i, to)
            return [(t, self.make.transfer(t, c.contract, c.token_id(i), frm, to))]
        if kind == "metadata_update":
            if self.rng.random() < ART_CHANGE_SHARE:
                fields = ["image"]  # the rare late artwork change of a live token
            else:
                fields = list(self.rng.choice(NON_CRITICAL_FIELDS))
            frozen = True if self.rng.random() < 0.1 else None
            return [(t, self.make.metadata_update(t, c.contract, c.token_id(i), fields, frozen))]
        frm = c.move(i, "")  # burn
        return [(t, self.make.burn(t, c.contract, c.token_id(i), frm))]

    def _mp(self) -> str:
        return self.make.marketplace()

    def vault(self, wallet: str) -> str:
        """The holder's other wallet (made on first use; it never buys on the market)."""
        other = self._vaults.get(wallet)
        if other is None:
            other = self.fresh_wallet()
            self._vaults[wallet] = other
            self._vaults[other] = wallet
        return other

    def buyer_for(self, c: Collection, i: int) -> str:
        owner = c.owners[i]
        buyer = self.trader_except(owner)
        earlier = c.previous.get(i, ())
        for _ in range(5):
            if buyer not in earlier or self.rng.random() < BUYBACK_SHARE:
                break
            buyer = self.trader_except(owner)
        return buyer

    def _sale(self, c: Collection, i: int, t: int) -> list[tuple[int, Envelope]]:
        rng = self.rng
        buyer = self.buyer_for(c, i)
        price = self.price(c, i, t)
        seller = c.move(i, buyer)
        c.record_sale(price, t)
        currency = "WETH" if rng.random() < WETH_SHARE else "ETH"
        tx = self.make.tx_hash()
        log = rng.randrange(1, 300)  # the sale's log; the token's Transfer log is just before
        token = c.token_id(i)
        sale = self.make.sale(
            t, c.contract, token, seller, buyer, price, currency=currency, tx=tx, log=log
        )
        out = [(t, sale)]
        if rng.random() < LEG_SHARE:
            # The chain source also reports the transaction's transfer: same block, same time.
            leg = self.make.transfer(t, c.contract, token, seller, buyer, tx=tx, log=log - 1)
            out.append((t, leg))
        return out

    def _mint(self, t: int) -> list[tuple[int, Envelope]] | None:
        launching = [c for c in self._pool if c.minted < c.size]
        if not launching:
            return None
        c = self.rng.choices(launching, [x.popularity for x in launching])[0]
        i = c.minted
        out = [(t, self.mint(c, t, self.trader()))]
        if self.rng.random() < REVEAL_SHARE:
            # Delayed reveal: the artwork appears within hours of the mint.
            later = t + self.rng.randrange(10 * MINUTE_MS, 6 * HOUR_MS)
            out.append((later, self.reveal(c, i, later)))
        return out

    def mint(self, c: Collection, t: int, to: str) -> Envelope:
        i = c.minted
        c.minted += 1
        c.move(i, to)
        price = c.mint_price
        return self.make.mint(t, c.contract, c.token_id(i), to, c.creator, price)

    def reveal(self, c: Collection, i: int, t: int) -> Envelope:
        return self.make.metadata_update(t, c.contract, c.token_id(i), list(REVEAL_FIELDS), None)

    def market_data(self, c: Collection, t: int) -> Envelope:
        floor = c.floor(t, self.rng)
        volume, sales = c.stats(t)
        return self.make.market_data(t, c.contract, floor, volume, sales, len(c.holders))

    def _social(self, c: Collection, t: int) -> Envelope:
        rng = self.rng
        sentiment = rng.gauss(c.sentiment, SIGNAL_SD)
        mentions = int(rng.lognormvariate(math.log(c.mentions), 0.8))
        entity = c.entity
        if rng.random() < 0.15:  # talk about one token (a hot one)
            i = self.token(c)
            if i is not None:
                entity = c.nft(i)
        return self.make.social_signal(t, entity, sentiment, mentions)

    def expected_events_per_action(self) -> float:
        shares = dict(MIX)
        return 1.0 + shares["sale"] * LEG_SHARE + shares["mint"] * REVEAL_SHARE


def _split(total: int, weights: list[float], minimum: int) -> list[int]:
    """`total` split in proportion to weights, each part ≥ minimum, summing to total."""
    spare = total - minimum * len(weights)
    scale = sum(weights)
    parts = [minimum + int(spare * w / scale) for w in weights]
    parts[0] += total - sum(parts)  # the rounding remainder to the largest
    return parts


MIX_KINDS: tuple[str, ...] = tuple(k for k, _ in MIX)
MIX_CUM: tuple[float, ...] = tuple(accumulate(w for _, w in MIX))


def draw_kind(rng: random.Random) -> str:
    return MIX_KINDS[bisect_right(MIX_CUM, rng.random() * MIX_CUM[-1])]
