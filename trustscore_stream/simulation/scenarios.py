"""Injected scenarios: scripted episodes of abuse or news inside the ordinary market, each
with a ground-truth label (labels.py).

Each scenario is planned once (its entities and the times of its steps) and then played as
the simulated clock reaches each step; a step makes exactly one event, so the number of
events is known in advance. Steps read the market as it is when they run (the floor, the
owner) and change it (ownership, floor, mood), so the ordinary activity around them stays
consistent. The patterns follow what the scoring model looks for (docs/scoring.md §5): wash
trades close loops on one token among 1–5 fresh wallets at prices far above the floor; a rug
pull ends in a critical `rug_pull` finding on the collection; a stolen token leaves its owner
without a sale, passes through a wallet later flagged for phishing and is flipped within hours.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping

from trustscore_stream.simulation.clock import DAY_MS, HOUR_MS, MINUTE_MS, describe_duration
from trustscore_stream.simulation.envelopes import Envelope, wallet_entity
from trustscore_stream.simulation.labels import Label
from trustscore_stream.simulation.market import Collection, Market

Step = tuple[int, Callable[[int], Envelope]]

WASH_TRADING = "wash_trading"
RUG_PULL = "rug_pull"
STOLEN_NFT = "stolen_nft"
PRICE_SPIKE = "price_spike"
SENTIMENT_SWING = "sentiment_swing"
VERIFIED_COLLECTION = "verified_collection"
SCENARIO_KINDS: tuple[str, ...] = (
    WASH_TRADING,
    RUG_PULL,
    STOLEN_NFT,
    PRICE_SPIKE,
    SENTIMENT_SWING,
    VERIFIED_COLLECTION,
)
# Below this many events the default set would crowd out the market: no scenarios unless
# asked for.
MIN_EVENTS_FOR_DEFAULTS = 2_000
# Scenario events may take at most this share of a run.
MAX_SCENARIO_SHARE = 0.5
# Wash patterns in the order instances get them: the first instance is a ring.
WASH_PATTERNS: tuple[str, ...] = ("ring", "round_trip", "self_trade")


def default_counts(events: int) -> dict[str, int]:
    """How many of each scenario a run of `events` gets by default."""
    if events < MIN_EVENTS_FOR_DEFAULTS:
        return {}
    per_100k = max(1, events // 100_000)
    return {
        WASH_TRADING: max(3, events // 40_000),
        RUG_PULL: max(1, events // 250_000),
        STOLEN_NFT: per_100k,
        PRICE_SPIKE: per_100k,
        SENTIMENT_SWING: per_100k,
        VERIFIED_COLLECTION: per_100k,
    }


def parse_scenarios(text: str, events: int) -> dict[str, int]:
    """`--scenarios`: `all` (the defaults), `none`, or `kind[=count],…`."""
    text = text.strip()
    if text == "all":
        return default_counts(events) or dict.fromkeys(SCENARIO_KINDS, 1)
    if text in ("", "none"):
        return {}
    counts: dict[str, int] = {}
    defaults = default_counts(max(events, MIN_EVENTS_FOR_DEFAULTS))
    for item in text.split(","):
        kind, _, count = item.strip().partition("=")
        if kind not in SCENARIO_KINDS:
            raise ValueError(
                f"unknown scenario {kind!r}: choose from {', '.join(SCENARIO_KINDS)}, all, none"
            )
        try:
            counts[kind] = int(count) if count else defaults[kind]
        except ValueError:
            raise ValueError(f"scenario count must be a whole number: {item!r}") from None
        if counts[kind] < 0:
            raise ValueError(f"scenario count must be ≥ 0: {item!r}")
    return {k: v for k, v in counts.items() if v}


def _spread(rng: random.Random, a: int, b: int, n: int) -> list[int]:
    """n increasing times in [a, b]: evenly spaced, jittered within their slots."""
    if n <= 0:
        return []
    slot = (b - a) / n
    return [a + int((k + rng.uniform(0.15, 0.85)) * slot) for k in range(n)]


class Scenario:
    """One planned instance: its label and its steps (time, one-event action)."""

    kind = ""

    def __init__(self, market: Market, label_id: str, start: int, duration: int) -> None:
        self.market = market
        self.rng = market.rng
        self.make = market.make
        self.start = start
        self.duration = duration
        self.steps: list[Step] = []
        self.label = Label(id=label_id, kind=self.kind, summary="", start=start, end=start)

    def at(self, fraction: float) -> int:
        return self.start + int(self.duration * fraction)

    def spread(self, a: float, b: float, n: int) -> list[int]:
        return _spread(self.rng, self.at(a), self.at(b), n)

    def add(self, t: int, action: Callable[[int], Envelope]) -> None:
        self.steps.append((t, action))

    def finish_plan(self) -> None:
        self.steps.sort(key=lambda s: s[0])
        self.label.start = self.steps[0][0]
        self.label.end = self.steps[-1][0]
        self.label.events = len(self.steps)


class TokenScenario(Scenario):
    """A scenario about one token: the token is locked (the everyday market leaves it alone)
    from planning until the scenario releases it."""

    def __init__(
        self,
        market: Market,
        label_id: str,
        start: int,
        duration: int,
        collection: Collection,
        token: int,
    ) -> None:
        super().__init__(market, label_id, start, duration)
        self.c = collection
        self.i = token
        collection.locked.add(token)

    def sell(self, t: int, buyer: str, price: float) -> Envelope:
        """The token's holder sells it to `buyer`: ownership and the floor's sales move."""
        c, i = self.c, self.i
        seller = c.move(i, buyer)
        c.record_sale(price, t)
        return self.make.sale(t, c.contract, c.token_id(i), seller, buyer, price)

    def release(self) -> None:
        self.c.locked.discard(self.i)


# --- wash trading -------------------------------------------------------------------------


class WashTrading(TokenScenario):
    """A token bought by a wash trader and traded among the trader's own fresh wallets.

    `self_trade`: one wallet sells the token to itself 4 times; `round_trip`: two wallets pass
    it back and forth 6 times; `ring`: 3–5 wallets pass it around the loop twice. Prices climb
    from 2× to 9× the floor (the point is a fake price history), on reward-farming
    marketplaces; a real buyer finally pays 3.5× the floor.
    """

    kind = WASH_TRADING

    def __init__(
        self,
        market: Market,
        label_id: str,
        start: int,
        duration: int,
        collection: Collection,
        token: int,
        pattern: str,
        ring_size: int,
    ) -> None:
        super().__init__(market, label_id, start, duration, collection, token)
        self.pattern = pattern
        size = {"self_trade": 1, "round_trip": 2}.get(pattern, ring_size)
        self.wallets = [market.fresh_wallet() for _ in range(size)]
        if pattern == "self_trade":
            legs = [(self.wallets[0], self.wallets[0])] * 4
        elif pattern == "round_trip":
            a, b = self.wallets
            legs = [(a, b), (b, a)] * 3
        else:
            loop = [(self.wallets[k], self.wallets[(k + 1) % size]) for k in range(size)]
            legs = loop * 2
        self.legs = legs
        self.marketplace = self.rng.choice(("blur", "looksrare"))
        nft = collection.nft(token)
        label = self.label
        names = {
            "self_trade": "self-trades",
            "round_trip": "a round trip between 2 wallets",
            "ring": f"a {size}-wallet trading ring",
        }
        label.summary = (
            f"wash trading ({names[pattern]}): token {nft} is traded {len(legs)} times among "
            "wallets of one trader at 2–9x the floor, then sold to an outside buyer"
        )
        label.details = {"pattern": pattern, "wallets": size, "wash_sales": len(legs)}
        label.add(nft, "wash-traded token")
        label.add(collection.entity, "collection of the wash-traded token")
        for w in self.wallets:
            label.add(wallet_entity(w), "wash-trading wallet")
        # First buy-in at 0–5 %, wash sales 10–85 %, exit listing and sale 88–100 %.
        self.first_loop = 0 if pattern == "self_trade" else size - 1
        self.add(self.at(0.02), self._buy_in)
        self.add(self.at(0.07), lambda t: self._listing(t, 2.0))
        for n, t in enumerate(self.spread(0.1, 0.85, len(legs))):
            self.add(t, self._wash(n))
        self.add(self.at(0.9), lambda t: self._listing(t, 4.0))
        self.add(self.at(1.0), self._exit)
        self.finish_plan()

    def _floor(self, t: int) -> float:
        return self.c.floor(t, self.rng)

    def _buy_in(self, t: int) -> Envelope:
        return self.sell(t, self.wallets[0], self.market.price(self.c, self.i, t))

    def _listing(self, t: int, multiple: float) -> Envelope:
        c, i = self.c, self.i
        price = self._floor(t) * multiple
        return self.make.listing(t, c.contract, c.token_id(i), c.owners[i], price, self.marketplace)

    def _wash(self, n: int) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c, i = self.c, self.i
            seller, buyer = self.legs[n]
            multiple = 2.0 + 7.0 * n / max(1, len(self.legs) - 1)
            multiple *= self.rng.uniform(0.95, 1.05)
            price = self._floor(t) * multiple
            c.move(i, buyer)
            c.record_sale(price, t)
            envelope = self.make.sale(
                t, c.contract, c.token_id(i), seller, buyer, price, marketplace=self.marketplace
            )
            nft = c.nft(i)
            if n == self.first_loop:
                self.label.tell(envelope["event_id"], t, nft, self._first_loop_text(multiple))
            elif n == len(self.legs) - 1:
                self.label.tell(
                    envelope["event_id"],
                    t,
                    nft,
                    f"{len(self.legs)} wash sales among {len(self.wallets)} wallet(s) within "
                    f"{describe_duration(t - self.label.start)}, the last at {multiple:.1f}x the "
                    "floor: the token's price history is not a market price",
                )
            return envelope

        return step

    def _first_loop_text(self, multiple: float) -> str:
        if self.pattern == "self_trade":
            return (
                f"self-trade: wallet {self.wallets[0]} sold the token to itself at "
                f"{multiple:.1f}x the floor; no value changed hands"
            )
        if self.pattern == "round_trip":
            return (
                f"round trip: the token went back to {self.wallets[0]} from {self.wallets[1]} "
                f"at {multiple:.1f}x the floor; the two wallets trade it between themselves"
            )
        return (
            f"circular trade: the token passed through {len(self.wallets)} wallets and came "
            f"back to {self.wallets[0]} at {multiple:.1f}x the floor (a wash-trading ring)"
        )

    def _exit(self, t: int) -> Envelope:
        buyer = self.market.trader()
        envelope = self.sell(t, buyer, self._floor(t) * 3.5)
        self.release()
        self.label.add(wallet_entity(buyer), "outside buyer at the inflated price")
        self.label.tell(
            envelope["event_id"],
            t,
            self.c.nft(self.i),
            f"sold to an outside buyer {buyer} at 3.5x the floor after wash trading: the "
            "buyer paid for a price history the wash trader made up",
        )
        return envelope


# --- rug pull -----------------------------------------------------------------------------


# The rug-pulled floor, as a multiple of the mint price.
COLLAPSED = 0.05


class RugPull(Scenario):
    """A new collection: minted (a fifth to the creator's team), hyped, then the team dumps
    its tokens, the floor collapses, the artwork is pulled, and a critical `rug_pull`
    finding arrives on the collection (and a high one on the creator)."""

    kind = RUG_PULL

    def __init__(self, market: Market, label_id: str, start: int, duration: int, size: int):
        super().__init__(market, label_id, start, duration)
        rng = self.rng
        self.mint_price = round(rng.uniform(0.04, 0.15), 3)
        creator = market.fresh_wallet()
        self.team = [creator, market.fresh_wallet(), market.fresh_wallet()]
        self.c = market.add_collection(
            size=size,
            minted=0,
            popularity=0.0,
            floor=self.mint_price,
            t=start,
            scripted=True,
            creator=creator,
        )
        self.c.mint_price = self.mint_price
        self.team_tokens = max(3, size // 5)
        self.peak = self.mint_price
        c = self.c
        label = self.label
        label.summary = (
            f"rug pull: new collection {c.entity} mints {size} tokens, is hyped, then its "
            f"creator's team sells its {self.team_tokens} tokens, the floor collapses, the "
            "artwork is pulled and a critical rug_pull finding arrives"
        )
        label.details = {"tokens": size, "team_tokens": self.team_tokens}
        label.add(c.entity, "rug-pulled collection")
        label.add(wallet_entity(creator), "creator")
        for w in self.team[1:]:
            label.add(wallet_entity(w), "creator's team wallet")
        self.dump_started = start
        # Phase A 0–25 %: mint-out, positive talk, first quotes.
        for k, t in enumerate(self.spread(0.0, 0.25, size)):
            self.add(t, self._mint(k))
        for t in self.spread(0.02, 0.25, 3):
            self.add(t, lambda t: self._social(t, rng.uniform(0.6, 0.85), 80, 300))
        for t, m in zip(self.spread(0.1, 0.25, 2), (1.2, 1.6), strict=True):
            self.add(t, self._quote(m))
        # Phase B 25–55 %: hype, secondary sales at a rising floor.
        hype = max(4, size // 6)
        for t, m in zip(self.spread(0.26, 0.55, hype), _ramp(1.6, 3.0, hype), strict=True):
            self.add(t, self._public_sale(m))
        for t, m in zip(self.spread(0.27, 0.55, 3), (2.0, 2.5, 3.0), strict=True):
            self.add(t, self._quote(m))
        for t in self.spread(0.28, 0.55, 3):
            self.add(t, lambda t: self._social(t, rng.uniform(0.7, 0.9), 150, 500))
        for t in self.spread(0.3, 0.55, 3):
            self.add(t, self._public_listing(3.2))
        # Phase C 56–70 %: the team dumps everything it holds.
        dump_times = self.spread(0.56, 0.7, self.team_tokens)
        for k, (t, m) in enumerate(zip(dump_times, _ramp(2.8, 1.0, self.team_tokens), strict=True)):
            self.add(t, self._dump(k, m))
        self.add(self.at(0.63), self._quote(1.8))
        # Phase D 71–80 %: collapse: quotes fall, artwork pulled, panic.
        for t, m in zip(self.spread(0.71, 0.8, 3), (0.4, 0.15, COLLAPSED), strict=True):
            self.add(t, self._quote(m, collapse=True))
        pulled = min(4, size)
        for k, t in enumerate(self.spread(0.72, 0.8, pulled)):
            self.add(t, self._pull_art(k))
        for t in self.spread(0.72, 0.8, 3):
            self.add(t, lambda t: self._social(t, rng.uniform(-0.95, -0.7), 300, 900))
        panic = max(3, size // 8)
        for t in self.spread(0.73, 0.8, panic):
            self.add(t, self._public_sale(None))
        # Phase E 80–100 %: the findings, then a dead market.
        self.add(self.at(0.81), self._finding_collection)
        self.add(self.at(0.83), self._finding_creator)
        for t in self.spread(0.84, 1.0, 3):
            self.add(t, self._public_listing(0.08))
        for t in self.spread(0.85, 1.0, 2):
            self.add(t, lambda t: self._social(t, rng.uniform(-0.9, -0.6), 100, 400))
        self.add(self.at(1.0), self._quote(0.03, collapse=True))
        self.finish_plan()

    def _social(self, t: int, sentiment: float, low: int, high: int) -> Envelope:
        return self.make.social_signal(t, self.c.entity, sentiment, self.rng.randint(low, high))

    def _mint(self, k: int) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            # The team mints its reserve first, as rug-pulling teams do.
            to = self.team[k % 3] if k < self.team_tokens else self.market.trader()
            return self.market.mint(self.c, t, to)

        return step

    def _quote(self, multiple: float, collapse: bool = False) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            floor = self.mint_price * multiple
            self.c.set_floor(floor, t, new_base=True)
            envelope = self.market.market_data(self.c, t)
            if collapse and multiple == COLLAPSED:
                self.label.tell(
                    envelope["event_id"],
                    t,
                    self.c.entity,
                    f"floor fell from {self.peak:.4f} to {floor:.4f} ETH "
                    f"(-{1.0 - floor / self.peak:.0%}) after the team's sell-off",
                )
            self.peak = max(self.peak, floor)
            return envelope

        return step

    def _public_token(self) -> int:
        """A minted token held outside the team (there always is one after the mint-out)."""
        c = self.c
        candidates = [i for i in range(c.minted) if c.owners[i] and c.owners[i] not in self.team]
        return self.rng.choice(candidates)

    def _public_sale(self, multiple: float | None) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c = self.c
            i = self._public_token()
            floor = c.floor(t, self.rng)
            price = (
                self.mint_price * multiple if multiple is not None else floor
            ) * self.rng.uniform(0.9, 1.15)
            buyer = self.market.trader_except(c.owners[i])
            seller = c.move(i, buyer)
            c.record_sale(price, t)
            return self.make.sale(t, c.contract, c.token_id(i), seller, buyer, price)

        return step

    def _public_listing(self, multiple: float) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c = self.c
            i = self._public_token()
            price = self.mint_price * multiple * self.rng.uniform(0.9, 1.2)
            mp = self.make.marketplace()
            return self.make.listing(t, c.contract, c.token_id(i), c.owners[i], price, mp)

        return step

    def _dump(self, k: int, multiple: float) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c = self.c
            i = next(j for j in range(c.minted) if c.owners[j] in self.team)
            buyer = self.market.trader()
            price = self.mint_price * multiple * self.rng.uniform(0.95, 1.05)
            seller = c.move(i, buyer)
            c.record_sale(price, t)
            envelope = self.make.sale(t, c.contract, c.token_id(i), seller, buyer, price)
            if k == 0:
                self.dump_started = t
                self.label.tell(
                    envelope["event_id"],
                    t,
                    c.entity,
                    f"the creator's team starts selling its tokens ({self.team_tokens} held by "
                    f"{self.team[0]} and 2 team wallets)",
                )
            elif k == self.team_tokens - 1:
                self.label.tell(
                    envelope["event_id"],
                    t,
                    c.entity,
                    f"the team sold all {self.team_tokens} of its tokens within "
                    f"{describe_duration(t - self.dump_started)}",
                )
            return envelope

        return step

    def _pull_art(self, k: int) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c = self.c
            i = k % c.minted
            envelope = self.make.metadata_update(
                t, c.contract, c.token_id(i), ["image", "name"], None
            )
            if k == 0:
                self.label.add(c.nft(i), "token whose artwork was pulled")
                self.label.tell(
                    envelope["event_id"],
                    t,
                    c.nft(i),
                    "the artwork of minted tokens was replaced after the sell-off (image and "
                    "name changed): buyers no longer own what they bought",
                )
            return envelope

        return step

    def _finding_collection(self, t: int) -> Envelope:
        c = self.c
        envelope = self.make.fraud_finding(
            t,
            c.entity,
            "rug_pull",
            "critical",
            0.9,
            "team sold its reserve and abandoned the project; artwork removed",
        )
        self.label.tell(
            envelope["event_id"],
            t,
            c.entity,
            "critical rug_pull finding (confidence 0.9) on the collection: treat every token "
            "of it as high risk",
        )
        return envelope

    def _finding_creator(self, t: int) -> Envelope:
        creator = wallet_entity(self.team[0])
        envelope = self.make.fraud_finding(
            t, creator, "rug_pull", "high", 0.8, f"creator of rug-pulled {self.c.entity}"
        )
        self.label.tell(
            envelope["event_id"],
            t,
            creator,
            "the creator's wallet is flagged for the rug pull (high, 0.8): its other and "
            "future collections inherit the risk",
        )
        return envelope


def _ramp(a: float, b: float, n: int) -> list[float]:
    if n == 1:
        return [a]
    return [a + (b - a) * k / (n - 1) for k in range(n)]


# --- stolen NFT ---------------------------------------------------------------------------


class StolenNft(TokenScenario):
    """A valuable token leaves its owner without a sale (a phishing drainer), is dumped
    below value, flipped within hours, and findings follow: `phishing` on the thief's
    wallet, `stolen` on the token."""

    kind = STOLEN_NFT

    def __init__(
        self,
        market: Market,
        label_id: str,
        start: int,
        duration: int,
        collection: Collection,
        token: int,
    ) -> None:
        super().__init__(market, label_id, start, duration, collection, token)
        self.thief = market.fresh_wallet()
        self.victim = collection.owners[token]  # locked from now: still the owner at theft
        self._first_sale = start
        nft = collection.nft(token)
        label = self.label
        label.summary = (
            f"stolen NFT: {nft} is drained from its owner by a phishing wallet, dumped below "
            "value and flipped within hours; phishing and stolen findings follow"
        )
        label.add(nft, "stolen token")
        label.add(collection.entity, "collection of the stolen token")
        label.add(wallet_entity(self.victim), "victim")
        label.add(wallet_entity(self.thief), "phishing wallet")
        self.add(self.at(0.0), self._theft)
        self.add(self.at(0.05), self._thief_listing)
        self.add(self.at(0.12), self._resale(0.55, first=True))
        self.add(self.at(0.3), self._phishing_finding)
        self.add(self.at(0.45), self._resale(1.0, first=False))
        self.add(self.at(0.6), self._stolen_finding)
        self.add(self.at(0.75), self._final_listing)
        self.finish_plan()

    def _value(self, t: int) -> float:
        return self.c.floor(t, self.rng) * self.c.rarity[self.i]

    def _theft(self, t: int) -> Envelope:
        c, i = self.c, self.i
        c.move(i, self.thief)
        envelope = self.make.transfer(t, c.contract, c.token_id(i), self.victim, self.thief)
        self.label.tell(
            envelope["event_id"],
            t,
            c.nft(i),
            f"the token left its owner {self.victim} without a sale, to {self.thief}",
        )
        return envelope

    def _thief_listing(self, t: int) -> Envelope:
        c, i = self.c, self.i
        price = self._value(t) * 0.5
        return self.make.listing(t, c.contract, c.token_id(i), self.thief, price, "blur")

    def _resale(self, multiple: float, first: bool) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c, i = self.c, self.i
            buyer = self.market.trader_except(c.owners[i], self.victim)
            envelope = self.sell(t, buyer, self._value(t) * multiple)
            self.label.add(wallet_entity(buyer), "buyer of the stolen token")
            if first:
                what = (
                    f"the token was sold {describe_duration(t - self.label.start)} after "
                    f"leaving its owner, at {multiple:.0%} of its value"
                )
            else:
                what = (
                    f"rapid flip: resold {describe_duration(t - self._first_sale)} after the "
                    "first sale; the stolen token is being passed on"
                )
            if first:
                self._first_sale = t
            self.label.tell(envelope["event_id"], t, c.nft(i), what)
            return envelope

        return step

    def _phishing_finding(self, t: int) -> Envelope:
        wallet = wallet_entity(self.thief)
        envelope = self.make.fraud_finding(
            t, wallet, "phishing", "high", 0.85, "drained NFTs through a malicious approval"
        )
        self.label.tell(
            envelope["event_id"],
            t,
            self.c.nft(self.i),
            f"a wallet in the token's ownership chain ({self.thief}) is flagged for phishing "
            "(high, 0.85)",
        )
        return envelope

    def _stolen_finding(self, t: int) -> Envelope:
        nft = self.c.nft(self.i)
        envelope = self.make.fraud_finding(
            t, nft, "stolen", "high", 0.9, f"reported stolen by {self.victim}"
        )
        self.label.tell(envelope["event_id"], t, nft, "the token is reported stolen (high, 0.9)")
        return envelope

    def _final_listing(self, t: int) -> Envelope:
        c, i = self.c, self.i
        price = self._value(t) * 1.1
        owner = c.owners[i]
        self.release()
        return self.make.listing(t, c.contract, c.token_id(i), owner, price, "opensea")


# --- price spike --------------------------------------------------------------------------


class PriceSpike(Scenario):
    """A mid-sized collection's floor rises 3.5x within hours on a burst of buying and
    excited talk, then settles at 1.8x."""

    kind = PRICE_SPIKE
    RISE = (1.3, 1.7, 2.2, 2.8, 3.5)
    RETRACE = (3.0, 2.3, 1.8)

    def __init__(
        self, market: Market, label_id: str, start: int, duration: int, collection: Collection
    ) -> None:
        super().__init__(market, label_id, start, duration)
        self.c = collection
        self.base = 0.0
        label = self.label
        label.summary = (
            f"price spike: the floor of {collection.entity} rises to 3.5x within hours on "
            "a burst of sales, then settles at 1.8x"
        )
        label.details = {"peak_multiple": self.RISE[-1], "settled_multiple": self.RETRACE[-1]}
        label.add(collection.entity, "collection with a price spike")
        rng = self.rng
        for t, m in zip(self.spread(0.0, 0.4, len(self.RISE)), self.RISE, strict=True):
            self.add(t, self._quote(m))
        for t in self.spread(0.05, 0.6, 10):
            self.add(t, self._sale)
        for t in self.spread(0.1, 0.6, 4):
            self.add(t, self._listing)
        for t in self.spread(0.1, 0.5, 3):
            self.add(t, lambda t: self._social(t, rng.uniform(0.6, 0.9)))
        for t, m in zip(self.spread(0.6, 1.0, len(self.RETRACE)), self.RETRACE, strict=True):
            self.add(t, self._quote(m))
        self.finish_plan()

    def _quote(self, multiple: float) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c = self.c
            if not self.base:
                self.base = c.floor(t, self.rng)
            c.set_floor(self.base * multiple, t, new_base=multiple == self.RETRACE[-1])
            envelope = self.market.market_data(c, t)
            what = ""
            if multiple == self.RISE[0]:
                what = f"floor up {multiple - 1:.0%}: the spike starts"
            elif multiple == self.RISE[-1]:
                what = (
                    f"floor at {multiple:.1f}x its level of "
                    f"{describe_duration(t - self.label.start)} ago "
                    f"({self.base:.4f} → {self.base * multiple:.4f} ETH)"
                )
            elif multiple == self.RETRACE[-1]:
                what = f"the spike settles: floor at {multiple:.1f}x its level before it"
            if what:
                self.label.tell(envelope["event_id"], t, c.entity, what)
            return envelope

        return step

    def _sale(self, t: int) -> Envelope:
        c = self.c
        i = self.market.token(c, tries=64)
        if i is None:
            return self.market.market_data(c, t)
        price = c.floor(t, self.rng) * self.rng.uniform(1.0, 1.25)
        buyer = self.market.trader_except(c.owners[i])
        seller = c.move(i, buyer)
        c.record_sale(price, t)
        return self.make.sale(t, c.contract, c.token_id(i), seller, buyer, price)

    def _listing(self, t: int) -> Envelope:
        c = self.c
        i = self.market.token(c, tries=64)
        if i is None:
            return self.market.market_data(c, t)
        price = c.floor(t, self.rng) * self.rng.uniform(1.2, 1.6)
        mp = self.make.marketplace()
        return self.make.listing(t, c.contract, c.token_id(i), c.owners[i], price, mp)

    def _social(self, t: int, sentiment: float) -> Envelope:
        mentions = int(self.c.mentions * self.rng.uniform(4.0, 8.0)) + 50
        return self.make.social_signal(t, self.c.entity, sentiment, mentions)


# --- sentiment swing ----------------------------------------------------------------------


class SentimentSwing(Scenario):
    """Talk about a popular collection turns from enthusiastic to hostile, louder and louder
    (12 signals with growing mentions), and the everyday mood follows."""

    kind = SENTIMENT_SWING
    SIGNALS = 12
    FROM, TO = 0.6, -0.8

    def __init__(
        self, market: Market, label_id: str, start: int, duration: int, collection: Collection
    ) -> None:
        super().__init__(market, label_id, start, duration)
        self.c = collection
        self.mentions = 0
        self.turned = False
        label = self.label
        label.summary = (
            f"sentiment swing: talk about {collection.entity} turns from +{self.FROM} to "
            f"{self.TO} with growing mentions"
        )
        label.details = {"from": self.FROM, "to": self.TO, "signals": self.SIGNALS}
        label.add(collection.entity, "collection whose sentiment swings")
        for k, t in enumerate(self.spread(0.0, 1.0, self.SIGNALS)):
            self.add(t, self._signal(k))
        self.finish_plan()

    def _signal(self, k: int) -> Callable[[int], Envelope]:
        def step(t: int) -> Envelope:
            c = self.c
            share = k / (self.SIGNALS - 1)
            sentiment = self.FROM + (self.TO - self.FROM) * share + self.rng.gauss(0.0, 0.05)
            sentiment = max(-1.0, min(1.0, sentiment))
            mentions = int(max(100.0, 2.0 * c.mentions) * (1.0 + 3.0 * share))
            self.mentions += mentions
            c.sentiment = min(c.sentiment, sentiment) if k else sentiment
            envelope = self.make.social_signal(t, c.entity, sentiment, mentions)
            if sentiment < 0 and not self.turned:
                self.turned = True
                self.label.tell(
                    envelope["event_id"],
                    t,
                    c.entity,
                    f"sentiment turned negative ({sentiment:+.2f} over {mentions} mentions)",
                )
            elif k == self.SIGNALS - 1:
                self.label.tell(
                    envelope["event_id"],
                    t,
                    c.entity,
                    f"sentiment fell from {self.FROM:+.1f} to {sentiment:+.2f} within "
                    f"{describe_duration(t - self.label.start)} ({self.mentions} mentions)",
                )
            return envelope

        return step


# --- verified collection ------------------------------------------------------------------


class VerifiedCollection(Scenario):
    """A popular collection is verified for its real creator, with an audit score."""

    kind = VERIFIED_COLLECTION

    def __init__(
        self, market: Market, label_id: str, start: int, duration: int, collection: Collection
    ) -> None:
        super().__init__(market, label_id, start, duration)
        self.c = collection
        collection.verified = True
        self.audit = float(self.rng.randint(70, 95))
        label = self.label
        label.summary = (
            f"verified collection: {collection.entity} is verified for its creator "
            f"{collection.creator} (audit score {self.audit:g})"
        )
        label.details = {"audit_score": self.audit}
        label.add(collection.entity, "verified collection")
        label.add(wallet_entity(collection.creator), "verified creator")
        self.add(self.at(0.5), self._verify)
        self.finish_plan()

    def _verify(self, t: int) -> Envelope:
        c = self.c
        envelope = self.make.collection_verified(t, c.contract, c.creator, self.audit)
        self.label.tell(
            envelope["event_id"],
            t,
            c.entity,
            f"the collection is verified for its creator {c.creator} (audit score "
            f"{self.audit:g}): its tokens minted by that creator are authentic",
        )
        return envelope


# --- planning -----------------------------------------------------------------------------

# How long each scenario lasts: a share of the run, at most a cap (so a long run keeps each
# episode within the model's windows: wash loops within a 7-day trade window, etc.).
DURATION: dict[str, tuple[float, int]] = {
    WASH_TRADING: (0.3, 36 * HOUR_MS),
    RUG_PULL: (0.6, 5 * DAY_MS),
    STOLEN_NFT: (0.2, 20 * HOUR_MS),
    PRICE_SPIKE: (0.15, 10 * HOUR_MS),
    SENTIMENT_SWING: (0.3, 2 * DAY_MS),
    VERIFIED_COLLECTION: (0.02, 10 * MINUTE_MS),
}


def rug_pull_size(events: int) -> int:
    return max(24, min(120, events // 800))


class Planner:
    """Plans scenario instances into a window of the simulated clock; numbers instances per
    kind across windows (wash_trading-1, -2, …)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.rng = market.rng
        self.serial: dict[str, int] = dict.fromkeys(SCENARIO_KINDS, 0)
        self._offsets: dict[str, int] = {}

    def plan(self, counts: Mapping[str, int], begin: int, end: int, events: int) -> list[Scenario]:
        out: list[Scenario] = []
        for kind in SCENARIO_KINDS:
            for _ in range(counts.get(kind, 0)):
                out.append(self._one(kind, begin, end, events))
        return out

    def _window(self, kind: str, begin: int, end: int) -> tuple[int, int]:
        span = end - begin
        share, cap = DURATION[kind]
        duration = max(1_000, min(int(span * share), cap))
        latest = max(begin, begin + int(span * 0.9) - duration)
        earliest = min(latest, begin + int(span * 0.05))
        return self.rng.randint(earliest, latest), duration

    def _next_id(self, kind: str) -> tuple[str, int]:
        self.serial[kind] += 1
        return f"{kind}-{self.serial[kind]}", self.serial[kind]

    def _one(self, kind: str, begin: int, end: int, events: int) -> Scenario:
        market = self.market
        start, duration = self._window(kind, begin, end)
        label_id, n = self._next_id(kind)
        if kind == WASH_TRADING:
            c = self._collection(kind, 0.2, n)
            token = self._token(c, prefer_rare=False)
            pattern = WASH_PATTERNS[(n - 1) % len(WASH_PATTERNS)]
            ring = 3 + self.rng.randrange(3)
            return WashTrading(market, label_id, start, duration, c, token, pattern, ring)
        if kind == RUG_PULL:
            return RugPull(market, label_id, start, duration, rug_pull_size(events))
        if kind == STOLEN_NFT:
            c = self._collection(kind, 0.3, n)
            return StolenNft(market, label_id, start, duration, c, self._token(c, True))
        if kind == PRICE_SPIKE:
            ranked = market.ranked()
            lo = len(ranked) // 10
            hi = max(lo + 1, len(ranked) // 2)
            c = ranked[lo + self.rng.randrange(hi - lo)]
            return PriceSpike(market, label_id, start, duration, c)
        if kind == SENTIMENT_SWING:
            return SentimentSwing(market, label_id, start, duration, self._collection(kind, 0.3, n))
        unverified = [c for c in market.ranked() if not c.verified] or market.ranked()
        pick = unverified[self.rng.randrange(max(1, math.ceil(len(unverified) * 0.2)))]
        return VerifiedCollection(market, label_id, start, duration, pick)

    def _collection(self, kind: str, head: float, n: int) -> Collection:
        """One of the top `head` share of collections: instance n of a kind takes the n-th
        of them from a seeded offset, so instances differ while there are enough."""
        ranked = self.market.ranked()
        top = ranked[: max(1, math.ceil(len(ranked) * head))]
        if kind not in self._offsets:
            self._offsets[kind] = self.rng.randrange(len(top))
        return top[(self._offsets[kind] + n - 1) % len(top)]

    def _token(self, c: Collection, prefer_rare: bool) -> int:
        draws = [i for i in (self.market.any_token(c) for _ in range(12)) if i is not None]
        if not draws:
            raise ValueError(f"collection {c.entity} has no tradable token for a scenario")
        if prefer_rare:
            return max(draws, key=lambda i: c.rarity[i])
        return draws[0]
