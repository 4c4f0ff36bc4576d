"""The chain source: follows EVM providers and publishes ERC-721 events once they are
`confirmations` blocks deep.

One step reads the heads of all providers, chooses one (`providers.choose`), looks at the tip
for reorgs, then reads the next bounded range of confirmed blocks, publishes its envelopes
and only then checkpoints the range's last block. Whatever fails inside a step leaves the
checkpoint where it was, so the range is read again (from another provider if this one
failed): no block is skipped, and a block whose envelopes were sent before a crash is sent
again with the same event ids, which the pipeline's dedup drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from aiokafka.errors import KafkaError

from trustscore_stream.events.retry import backoff_delay
from trustscore_stream.sources.checkpoint import ChainCheckpoint, CheckpointStore
from trustscore_stream.sources.erc721 import envelopes_for, parse_transfer_log
from trustscore_stream.sources.metrics import SourceMetrics
from trustscore_stream.sources.providers import ProviderState, best_head, choose, is_lagging
from trustscore_stream.sources.publisher import Publisher, check
from trustscore_stream.sources.ranges import BlockRange, next_range, split
from trustscore_stream.sources.reorg import BlockTracker, Header, find_fork_point
from trustscore_stream.sources.rpc import RangeTooLarge, Rpc, RpcFailure
from trustscore_stream.sources.settings import ChainSettings

log = logging.getLogger(__name__)


class ChainMoved(Exception):
    """The chain changed while a range was read (a reorg in progress): read it again."""


class ChainSource:
    def __init__(
        self,
        settings: ChainSettings,
        publisher: Publisher,
        checkpoints: CheckpointStore,
        metrics: SourceMetrics | None = None,
        rpc_factory: Callable[[str, float], Rpc] = Rpc,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.checkpoints = checkpoints
        self.metrics = metrics or SourceMetrics()
        self.rpcs = [rpc_factory(url, settings.rpc_timeout_s) for url in settings.rpc_urls]
        self.states = [ProviderState(rpc.url, rpc.label) for rpc in self.rpcs]
        self.active: int | None = None
        self.tracker = BlockTracker(window=settings.reorg_window)
        self.next_block: int | None = None
        self.span = settings.max_range
        self.clock = clock
        self.name = settings.name

    # --- life cycle ---------------------------------------------------------------------

    async def resume(self) -> None:
        """Load the checkpoint; `--from-block` wins over it (an explicit replay)."""
        checkpoint = await self.checkpoints.load()
        if checkpoint is not None:
            self.tracker = BlockTracker.restore(checkpoint.hashes, self.settings.reorg_window)
            self.next_block = checkpoint.block + 1
            self.metrics.checkpoint_block.labels(self.name).set(checkpoint.block)
        if self.settings.from_block is not None:
            self.next_block = self.settings.from_block
            self.tracker.forget_above(self.settings.from_block - 1)
        log.info("%s: starting at block %s", self.name, self.next_block or "the confirmed head")

    async def close(self) -> None:
        for rpc in self.rpcs:
            await rpc.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Step until `stop` is set; idle `poll_interval` when caught up. A broker failure
        is retried with backoff (the checkpoint did not move, so nothing is skipped)."""
        await self.resume()
        failures = 0
        while not stop.is_set():
            try:
                progressed = await self.step()
                failures = 0
            except KafkaError as exc:
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.warning("%s: broker error %s; retrying in %.1fs", self.name, exc, delay)
                progressed = False
                await _sleep_or_stop(stop, delay)
                continue
            if not progressed:
                await _sleep_or_stop(stop, self.settings.poll_interval_s)

    # --- one step -----------------------------------------------------------------------

    async def step(self) -> bool:
        """Read at most one range. True when something was done (call again at once)."""
        await self._refresh_heads()
        chosen = choose(self.states, self.active, self.settings.max_lag, self.clock())
        if chosen is None:
            log.warning("%s: no usable provider: %s", self.name, self._health())
            return False
        if chosen != self.active:
            if self.active is not None:
                self.metrics.provider_switches.inc()
                log.warning(
                    "%s: switching provider %s -> %s",
                    self.name,
                    self.states[self.active].label,
                    self.states[chosen].label,
                )
            for state in self.states:
                self.metrics.provider_active.labels(state.label).set(0)
            self.metrics.provider_active.labels(self.states[chosen].label).set(1)
            self.active = chosen
        rpc, state = self.rpcs[chosen], self.states[chosen]
        assert state.head is not None
        block_range: BlockRange | None = None
        try:
            await self._observe_tip(rpc, state.head)
            target = state.head - self.settings.confirmations
            if self.next_block is None:
                self.next_block = max(0, target)
            block_range = next_range(self.next_block, target, self.span)
            if block_range is None:
                return False
            await self._process(rpc, block_range)
            return True
        except RangeTooLarge as exc:
            assert block_range is not None
            first, rest = split(block_range)
            if rest is None:
                self._provider_failed(chosen, exc)
            else:
                self.span = first.size
                self.metrics.range_splits.labels(self.name).inc()
                log.info("%s: %s; reading at most %d blocks", self.name, exc.detail, self.span)
            return True
        except RpcFailure as exc:
            self._provider_failed(chosen, exc)
            return True
        except ChainMoved as exc:
            log.info("%s: %s", self.name, exc)
            return True

    def _provider_failed(self, index: int, exc: RpcFailure) -> None:
        state = self.states[index]
        state.failed(str(exc), self.clock(), cooldown_s=max(5.0, 5 * self.settings.poll_interval_s))
        self.metrics.provider_errors.labels(state.label, exc.kind).inc()
        self.metrics.provider_up.labels(state.label).set(0)
        log.warning("%s: provider failed: %s", self.name, exc)

    async def _refresh_heads(self) -> None:
        async def ask(rpc: Rpc, state: ProviderState) -> None:
            try:
                state.head = await rpc.head()
                state.healthy = True
                self.metrics.provider_up.labels(state.label).set(1)
                self.metrics.provider_head.labels(state.label).set(state.head)
            except RpcFailure as exc:
                state.healthy = False
                state.last_error = str(exc)
                self.metrics.provider_up.labels(state.label).set(0)
                self.metrics.provider_errors.labels(state.label, exc.kind).inc()

        await asyncio.gather(*(ask(r, s) for r, s in zip(self.rpcs, self.states, strict=True)))
        best = best_head(self.states)
        for state in self.states:
            if state.head is not None and best is not None:
                self.metrics.provider_lag.labels(state.label).set(best - state.head)
            lagging = is_lagging(state, best, self.settings.max_lag)
            if lagging and not state.lagging:
                self.metrics.provider_errors.labels(state.label, "lag").inc()
                lag = (best or 0) - (state.head or 0)
                log.warning("%s: %s lags %d blocks behind", self.name, state.label, lag)
            state.lagging = lagging

    def _health(self) -> str:
        return "; ".join(f"{s.label} head={s.head} {s.last_error}" for s in self.states)

    # --- reorgs -------------------------------------------------------------------------

    async def _observe_tip(self, rpc: Rpc, head: int) -> None:
        """Remember the tip's hash; a changed hash or a broken parent link is a reorg."""
        tip = await rpc.header(head)
        known = self.tracker.hashes.get(tip.number)
        if (known is not None and known != tip.hash) or not self.tracker.parent_matches(tip):
            await self._reorg(rpc, tip.number)
        self.tracker.remember(tip.number, tip.hash)

    async def _reorg(self, rpc: Rpc, below: int) -> None:
        async def canonical(number: int) -> str:
            return (await rpc.header(number)).hash

        fork = await find_fork_point(self.tracker, below, canonical)
        self.tracker.forget_above(fork)
        processed = (self.next_block or 0) - 1
        if fork >= processed:
            # Only unconfirmed blocks were orphaned: nothing was emitted for them.
            self.metrics.reorgs.labels(self.name, "unconfirmed").inc()
            log.info("%s: reorg above block %d (unconfirmed, nothing emitted)", self.name, fork)
            return
        # Deeper than the confirmation depth: events of blocks fork+1..processed were
        # emitted and cannot be taken back. Re-read from the fork point.
        self.metrics.reorgs.labels(self.name, "confirmed").inc()
        log.error(
            "%s: reorg of %d confirmed blocks (fork at %d): raise the confirmation depth",
            self.name,
            processed - fork,
            fork,
        )
        self.next_block = fork + 1
        await self._save(fork)

    # --- reading a range ----------------------------------------------------------------

    async def _process(self, rpc: Rpc, block_range: BlockRange) -> None:
        first = await rpc.header(block_range.first)
        if not self.tracker.parent_matches(first):
            await self._reorg(rpc, first.number)
            raise ChainMoved(f"parent of block {first.number} changed")
        headers: dict[int, Header] = {first.number: first}
        if block_range.size == 1:
            raw_logs = await rpc.transfer_logs(block_range, self.settings.contracts, first.hash)
        else:
            last = await rpc.header(block_range.last)
            headers[last.number] = last
            raw_logs = await rpc.transfer_logs(block_range, self.settings.contracts)
        transfers = [t for t in map(parse_transfer_log, raw_logs) if t is not None]
        for transfer in transfers:
            header = headers.get(transfer.block_number)
            if header is None:
                header = headers[transfer.block_number] = await rpc.header(transfer.block_number)
            if header.hash != transfer.block_hash:
                raise ChainMoved(f"block {transfer.block_number} changed while it was read")
        if block_range.size > 1:
            again = await rpc.header(block_range.last)
            if again.hash != headers[block_range.last].hash:
                raise ChainMoved(f"block {block_range.last} changed while the range was read")
        paid = {}
        for tx_hash in dict.fromkeys(t.tx_hash for t in transfers):
            paid[tx_hash] = await rpc.paid(tx_hash)
        candidates = envelopes_for(
            transfers,
            paid,
            {n: h.timestamp for n, h in headers.items()},
            chain=self.settings.chain,
            currency=self.settings.currency,
            marketplaces=self.settings.marketplaces,
        )
        checked = check(candidates)
        await self.publisher.send_envelopes(checked.envelopes)
        if checked.rejections:
            origin = {"source": "chain", "name": self.name, "provider": rpc.label}
            await self.publisher.send_dead_letters(
                self.publisher.letter(
                    reason=r.reason, detail=r.detail, raw=r.raw, origin=origin, index=r.index
                )
                for r in checked.rejections
            )
            for r in checked.rejections:
                self.metrics.dead_lettered.labels(self.name, r.reason).inc()
        replaced = sorted(
            h.number
            for h in headers.values()
            if self.tracker.hashes.get(h.number) not in (None, h.hash)
        )
        # Heights of the range seen earlier as the tip may hold orphaned hashes: keep only
        # the headers this read verified.
        self.tracker.forget_between(block_range.first, block_range.last)
        for header in headers.values():
            self.tracker.remember(header.number, header.hash)
        for number in replaced:
            # Seen earlier as an unconfirmed tip with another hash: orphaned before it was
            # confirmed, so nothing had been emitted for it.
            self.metrics.reorgs.labels(self.name, "unconfirmed").inc()
            log.info("%s: block %d was replaced before it was confirmed", self.name, number)
        self.next_block = block_range.last + 1
        await self._save(block_range.last)
        for kind, count in Counter(e.type for e in checked.envelopes).items():
            self.metrics.events.labels(self.name, kind).inc(count)

    async def _save(self, block: int) -> None:
        await self.checkpoints.save(ChainCheckpoint(block, self.tracker.snapshot()))
        self.metrics.checkpoint_block.labels(self.name).set(block)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
