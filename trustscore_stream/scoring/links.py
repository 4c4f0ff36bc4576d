"""Cross-partition links: how creator and wallet state reach the partitions that score with it.

Pure: no Faust, no I/O, no wall clock (callers pass `now` / `now_ms`).

A collection and its NFTs live on the collection's partition; a wallet (creators too) on its
own. Two kinds of small records travel on the internal topic `trustscore-wallet-links`, in
batch records (a JSON array of links per Kafka record):

- `ReportLink`, collection partition -> the creator wallet's partition: the collection's
  `CollectionReport`, sent when it changed meaningfully since the last one sent
  (`report_to_send`). Receipt is `apply_report` (last writer by report time wins).
- `SummaryLink`, wallet partition -> every partition that scores with the wallet: the
  partitions of its collections (creator reputation, creator findings) and, while it has a
  finding that flags owners, all partitions (any NFT may have it in its ownership chain).
  A partition that no longer needs it gets `summary=None` ("cleared"). `n` grows with every
  summary of a wallet, so receipt is last-writer-wins and repeats are no-ops
  (`receive_summary`).

What each side keeps, in the partition's entity state (checkpointed with it):
    `SentReport`   key `sent:collection:…`  the last report sent for a collection
    `SentSummary`  key `sent:wallet:…`      digest, number and targets of the last summary sent
    `Replica`      key `summary:wallet:…`   the summary held for a wallet (None = cleared)
    `FlaggedIndex` key `summary:flagged`    the wallets whose held summary flags owners, so
                                            scoring an NFT asks for its chain's summaries
                                            only when there is one (nearly never)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import msgspec
from msgspec import Struct

from trustscore_stream.scoring import fraud
from trustscore_stream.scoring.creator import MIN_HEALTH_CONFIDENCE, CollectionReport, WalletSummary
from trustscore_stream.scoring.scores import collection_report
from trustscore_stream.scoring.state import CollectionState, WalletState, summarize_wallet

SUMMARY_PREFIX = "summary:"
FLAGGED_INDEX_KEY = "summary:flagged"
SENT_PREFIX = "sent:"
# Health moves below this many points are not worth a report: creator_reputation averages
# health over collections, so a sub-point change cannot move it by more than half a point.
REPORT_HEALTH_STEP = 1.0
# A batch record stays far below the broker's 1 MiB message limit.
MAX_RECORD_BYTES = 256 * 1024


class ReportLink(Struct, frozen=True, gc=False, array_like=True, tag="report"):
    wallet: str  # the creator's wallet id
    cause: str  # the event id behind the change (history rows name it)
    report: CollectionReport


class SummaryLink(Struct, frozen=True, gc=False, array_like=True, tag="summary"):
    wallet: str
    n: int  # grows with every summary of this wallet
    cause: str
    summary: WalletSummary | None  # None: this partition no longer needs it


Link = ReportLink | SummaryLink


class SentReport(Struct, frozen=True, gc=False, tag="sent_report", tag_field="k"):
    id: str  # collection id
    wallet: str
    report: CollectionReport


class SentSummary(Struct, frozen=True, gc=False, tag="sent_summary", tag_field="k"):
    id: str  # wallet id
    n: int
    digest: str  # of the encoded summary ("" = nothing to say)
    targets: tuple[int, ...] = ()


class Replica(Struct, frozen=True, gc=False, tag="replica", tag_field="k"):
    id: str  # wallet id
    n: int
    summary: WalletSummary | None = None


class FlaggedIndex(Struct, frozen=True, gc=False, tag="flagged_index", tag_field="k"):
    wallets: frozenset[str] = frozenset()


Linked = SentReport | SentSummary | Replica | FlaggedIndex

_link_encoder = msgspec.json.Encoder()
_links_decoder = msgspec.json.Decoder(list[Link])


def summary_key(wallet: str) -> str:
    return SUMMARY_PREFIX + wallet


def sent_key(entity: str) -> str:
    return SENT_PREFIX + entity


def encode_links(links: Iterable[Link]) -> Iterator[bytes]:
    """Batch records (JSON arrays) of at most MAX_RECORD_BYTES each (one link may exceed it)."""
    parts: list[bytes] = []
    size = 2
    for link in links:
        raw = _link_encoder.encode(link)
        if parts and size + len(raw) + 1 > MAX_RECORD_BYTES:
            yield b"[" + b",".join(parts) + b"]"
            parts, size = [], 2
        parts.append(raw)
        size += len(raw) + 1
    if parts:
        yield b"[" + b",".join(parts) + b"]"


def decode_links(raw: bytes) -> list[Link]:
    """Raises msgspec.DecodeError / ValidationError on a corrupt record."""
    return _links_decoder.decode(raw)


def meaningful(last: CollectionReport | None, new: CollectionReport) -> bool:
    """Whether `new` says something the creator's record does not know from `last`."""
    if last is None:
        return True
    if last.verified != new.verified or last.flagged != new.flagged:
        return True
    if (last.health_confidence >= MIN_HEALTH_CONFIDENCE) != (
        new.health_confidence >= MIN_HEALTH_CONFIDENCE
    ):
        return True
    return abs(last.health - new.health) >= REPORT_HEALTH_STEP


def report_to_send(
    collection: CollectionState, last: SentReport | None, now: datetime
) -> SentReport | None:
    """The report to send for a changed collection (kept as the new `last`), or None."""
    found = collection_report(collection, now)
    if found is None:
        return None
    wallet, report = found
    # A new creator (a verification naming another wallet) gets the report whatever it says.
    if last is not None and last.wallet == wallet and not meaningful(last.report, report):
        return None
    return SentReport(collection.id, wallet, report)


def flags_owners(summary: WalletSummary | None) -> bool:
    """Whether the summary changes the score of NFTs the wallet owned (`score_nft`'s
    provenance flags: an unresolved finding of positive weight)."""
    if summary is None:
        return False
    worst = fraud.worst(summary.findings)
    return worst is not None and worst[0] > 0


def targets(
    summary: WalletSummary | None, partitions: int, partition_of: Callable[[str], int]
) -> tuple[int, ...]:
    """Partitions that score with this summary (`partition_of`: a collection's partition)."""
    if summary is None:
        return ()
    if flags_owners(summary):
        return tuple(range(partitions))
    return tuple(sorted({partition_of(c) for c in summary.collections}))


def _digest(summary: WalletSummary | None) -> str:
    if summary is None:
        return ""
    return hashlib.blake2b(_link_encoder.encode(summary), digest_size=12).hexdigest()


def summary_to_send(
    wallet: WalletState,
    last: SentSummary | None,
    now_ms: int,
    partitions: int,
    partition_of: Callable[[str], int],
    cause: str,
) -> tuple[SentSummary, list[tuple[int, SummaryLink]]] | None:
    """After a wallet changed: the new `last` and the (partition, link) pairs to send, or None
    when the partitions already hold what there is to say.

    `n` = max(last n + 1, now_ms): it grows with every summary even when partitions move to a
    worker whose clock is behind, since `last` is checkpointed with the wallet.
    """
    summary = summarize_wallet(wallet)
    digest = _digest(summary)
    before = last.targets if last is not None else ()
    if last is not None and last.digest == digest:
        return None
    if last is None and summary is None:
        return None
    n = max(last.n + 1 if last is not None else 0, now_ms)
    now_targets = targets(summary, partitions, partition_of)
    sends = [(p, SummaryLink(wallet.id, n, cause, summary)) for p in now_targets]
    cleared = SummaryLink(wallet.id, n, cause, None)
    sends += [(p, cleared) for p in before if p not in now_targets]
    return SentSummary(wallet.id, n, digest, now_targets), sends


def receive_summary(held: Replica | None, link: SummaryLink) -> Replica | None:
    """The replica to keep after `link` arrives, or None if it is not newer than `held`."""
    if held is not None and held.n >= link.n:
        return None
    return Replica(link.wallet, link.n, link.summary)


def reindex(index: FlaggedIndex | None, replica: Replica) -> FlaggedIndex | None:
    """The flagged-wallet index after `replica` was stored; None if unchanged."""
    wallets = index.wallets if index is not None else frozenset()
    flagged = flags_owners(replica.summary)
    if (replica.id in wallets) == flagged:
        return None
    return FlaggedIndex(wallets | {replica.id} if flagged else wallets - {replica.id})


def replica_collections(*replicas: Replica | None) -> set[str]:
    """Collections a creator's summaries name (old and new): their scores read it."""
    out: set[str] = set()
    for replica in replicas:
        if replica is not None and replica.summary is not None:
            out.update(replica.summary.collections)
    return out
