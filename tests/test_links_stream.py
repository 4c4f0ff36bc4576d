"""Creator and wallet state across partitions, through the real broker and worker: a
finding on one collection lowers the creator reputation of the creator's other collection
(another partition), and a finding on a wallet flags the NFTs it owned; both read over REST."""

from __future__ import annotations

from typing import Any

import pytest

from tests.stack import Stack, now_rfc3339
from tests.test_scoring_stream import wait_score
from trustscore_stream.partitioning import partition_for

pytestmark = pytest.mark.integration

A = "0x" + "01" * 20  # collection A: partition 1 of 8
B = "0x" + "06" * 20  # collection B: partition 4
CREATOR = "0x" + "0f" * 20  # wallet partition 5
OWNER = "0x" + "1c" * 20  # wallet partition 2
COLL_A, COLL_B = f"collection:eth:{A}", f"collection:eth:{B}"
NFT_B = f"nft:eth:{B}:7"


def envelope(kind: str, event_id: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "source": "internal",
        "occurred_at": now_rfc3339(),
        "schema_version": 1,
        "payload": payload,
        **extra,
    }


def finding(event_id: str, entity: str, severity: str) -> dict[str, Any]:
    payload = {"entity": entity, "finding": "rug_pull", "severity": severity, "confidence": 0.95}
    return envelope("fraud_finding", event_id, payload)


def evidence(body: dict[str, Any], factor: str) -> str:
    return " | ".join(body["factors"][factor]["evidence"])


async def test_creator_and_wallet_findings_reach_other_partitions(stack: Stack) -> None:
    partitions = [partition_for(k, stack.partitions) for k in (COLL_A, COLL_B)]
    partitions += [partition_for(f"wallet:eth:{w}", stack.partitions) for w in (CREATOR, OWNER)]
    assert len(set(partitions)) == 4  # four different partitions: nothing is local by chance
    worker = stack.start_worker("w")
    await worker.wait_ready()
    verify = {"verified": True, "creator": CREATOR}
    await stack.produce(
        [
            [
                envelope("collection_verified", "v-a", verify, contract=A),
                envelope("collection_verified", "v-b", verify, contract=B),
                envelope("mint", "m-b", {"to": OWNER}, contract=B, token_id="7"),
            ]
        ]
    )
    # A's report reached the creator, whose summary reached B's partition.
    before = await wait_score(
        worker, NFT_B, lambda b: "1 other collections" in evidence(b, "creator_reputation")
    )
    assert OWNER not in evidence(before, "provenance")

    await stack.produce([finding("rug-a", COLL_A, "critical")])
    rugged = await wait_score(
        worker, NFT_B, lambda b: "rug_pull" in evidence(b, "creator_reputation")
    )
    drop = before["factors"]["creator_reputation"]["value"]
    assert rugged["factors"]["creator_reputation"]["value"] < drop - 10
    collection = await wait_score(
        worker, COLL_B, lambda b: "rug_pull" in evidence(b, "creator_reputation")
    )
    assert collection["factors"]["creator_reputation"]["value"] < drop - 10

    await stack.produce([finding("phish-owner", f"wallet:eth:{OWNER}", "high")])
    flagged = await wait_score(worker, NFT_B, lambda b: OWNER in evidence(b, "provenance"))
    assert "flagged wallet" in evidence(flagged, "provenance")
    assert flagged["factors"]["provenance"]["value"] < before["factors"]["provenance"]["value"]
