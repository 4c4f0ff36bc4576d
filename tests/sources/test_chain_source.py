"""The chain source against a real local EVM node (anvil) and the session broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.sources.anvil import Anvil, Driver, Mined
from tests.sources.chainrun import published, settings_for, start_source
from tests.stack import Stack
from tests.test_scoring_stream import wait_score
from trustscore_stream.embedded import free_port
from trustscore_stream.sources.erc721 import rfc3339_from_unix

pytestmark = pytest.mark.integration

ZERO = "0x" + "0" * 40


def envelope(
    kind: str, nft: str, token: int, mined: Mined, index: int, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": f"{mined.tx_hash}:{index}",
        "type": kind,
        "source": "chain",
        "occurred_at": rfc3339_from_unix(mined.timestamp),
        "schema_version": 1,
        "chain": "eth",
        "contract": nft,
        "token_id": str(token),
        "payload": payload,
    }


def transfer_log_index(mined: Mined, nft: str) -> int:
    transfer = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    (log,) = [
        entry
        for entry in mined.receipt["logs"]
        if entry["address"].lower() == nft and entry["topics"][0] == transfer
    ]
    return int(log["logIndex"], 16)


async def test_mint_transfer_sale_burn_with_a_restart_and_scores(
    stack: Stack, anvil: Anvil
) -> None:
    worker = stack.start_worker("w")  # starts while the chain is prepared
    chain = Driver([anvil])
    owner, alice, bob = chain.accounts[0], chain.accounts[1], chain.accounts[2]
    nft, deployed = chain.deploy("TestNFT")
    market, _ = chain.deploy("TestMarket")
    settings = settings_for(
        [anvil.url],
        contracts=frozenset({nft}),
        marketplaces={market: "testmarket"},
        from_block=deployed,
    )
    running = await start_source(stack, settings)
    mint1 = chain.call(owner, "TestNFT", nft, "mint", alice, 1)
    mint2 = chain.call(owner, "TestNFT", nft, "mint", alice, 2)
    move = chain.call(alice, "TestNFT", nft, "transferFrom", alice, bob, 1)
    chain.mine(2)
    await running.wait_processed(move.block)
    await running.halt()  # restart mid-stream: the sale and the burn come later

    chain.call(alice, "TestNFT", nft, "approve", market, 2)
    price = 1_250_000_000_000_000_000
    sale = chain.call(bob, "TestMarket", market, "buy", nft, alice, 2, value=price)
    burn = chain.call(bob, "TestNFT", nft, "burn", 1)
    chain.mine(1)  # the burn is only one block deep: not emitted yet
    running = await start_source(
        stack,
        settings_for([anvil.url], contracts=frozenset({nft}), marketplaces={market: "testmarket"}),
    )
    await running.wait_processed(sale.block)
    assert running.source.next_block == burn.block  # waits for confirmations
    chain.mine(1)
    await running.wait_processed(burn.block)
    await running.halt()

    expected = [
        envelope(
            "mint",
            nft,
            1,
            mint1,
            transfer_log_index(mint1, nft),
            {"to": alice, "tx_hash": mint1.tx_hash},
        ),
        envelope(
            "mint",
            nft,
            2,
            mint2,
            transfer_log_index(mint2, nft),
            {"to": alice, "tx_hash": mint2.tx_hash},
        ),
        envelope(
            "transfer",
            nft,
            1,
            move,
            transfer_log_index(move, nft),
            {"from": alice, "to": bob, "tx_hash": move.tx_hash},
        ),
        envelope(
            "sale",
            nft,
            2,
            sale,
            transfer_log_index(sale, nft),
            {
                "seller": alice,
                "buyer": bob,
                "price": "1.25",
                "currency": "ETH",
                "marketplace": "testmarket",
                "tx_hash": sale.tx_hash,
            },
        ),
        envelope("burn", nft, 1, burn, transfer_log_index(burn, nft), {"from": bob}),
    ]
    got = await published(stack, len(expected))
    assert got == expected  # exact, in chain order, no gap, no duplicate across the restart
    assert (await stack.consume("trustscore-events-dlq", until=0, timeout=0.3)) == []

    # Through the real worker: the sold NFT has a score.
    await worker.wait_ready()
    body = await wait_score(worker, f"nft:eth:{nft}:2", lambda b: 0 <= b["score"] <= 100)
    assert body["entity"] == f"nft:eth:{nft}:2"


async def test_orphaned_unconfirmed_transfer_is_never_emitted(stack: Stack, anvil: Anvil) -> None:
    chain = Driver([anvil])
    owner, alice, bob, carol = chain.accounts[:4]
    nft, deployed = chain.deploy("TestNFT")
    running = await start_source(
        stack, settings_for([anvil.url], contracts=frozenset({nft}), from_block=deployed)
    )
    mint = chain.call(owner, "TestNFT", nft, "mint", alice, 5)
    head = chain.mine(2)
    await running.wait_processed(mint.block)
    snapshot = anvil.rpc("evm_snapshot")
    saved_time = chain.timestamp
    orphan = chain.call(alice, "TestNFT", nft, "transferFrom", alice, bob, 5)
    await running.wait_seen(orphan.block, chain.block_hash(anvil, orphan.block))
    assert anvil.rpc("evm_revert", snapshot) is True
    chain.timestamp = saved_time + 1  # another block at the same height
    replacement = chain.call(alice, "TestNFT", nft, "transferFrom", alice, carol, 5)
    assert replacement.block == orphan.block == head + 1
    chain.mine(2)
    await running.wait_processed(replacement.block)
    await running.halt()

    got = await published(stack, 2)
    assert [(e["type"], e["event_id"]) for e in got] == [
        ("mint", f"{mint.tx_hash}:{transfer_log_index(mint, nft)}"),
        ("transfer", f"{replacement.tx_hash}:{transfer_log_index(replacement, nft)}"),
    ]
    assert got[1]["payload"]["to"] == carol
    assert all(orphan.tx_hash not in e["event_id"] for e in got)
    assert (
        running.metric("trustscore_source_reorgs_total", source="chain-test", depth="unconfirmed")
        >= 1
    )


async def test_reorg_of_emitted_blocks_rewinds_and_rereads(stack: Stack, anvil: Anvil) -> None:
    # With no confirmations the orphaned transfer was already emitted (that is what the
    # depth is for); the source must still notice, rewind to the fork and emit the new chain.
    chain = Driver([anvil])
    owner, alice, bob, carol = chain.accounts[:4]
    nft, deployed = chain.deploy("TestNFT")
    running = await start_source(
        stack,
        settings_for([anvil.url], contracts=frozenset({nft}), from_block=deployed, confirmations=0),
    )
    chain.call(owner, "TestNFT", nft, "mint", alice, 9)
    snapshot = anvil.rpc("evm_snapshot")
    saved_time = chain.timestamp
    orphan = chain.call(alice, "TestNFT", nft, "transferFrom", alice, bob, 9)
    await running.wait_processed(orphan.block)
    assert anvil.rpc("evm_revert", snapshot) is True
    chain.timestamp = saved_time + 1
    replacement = chain.call(alice, "TestNFT", nft, "transferFrom", alice, carol, 9)
    after = chain.call(carol, "TestNFT", nft, "burn", 9)
    await running.wait_processed(after.block)
    await running.halt()

    got = await published(stack, 4)
    assert [e["type"] for e in got] == ["mint", "transfer", "transfer", "burn"]
    assert got[1]["event_id"].startswith(orphan.tx_hash)
    assert got[2]["event_id"].startswith(replacement.tx_hash)
    assert (
        running.metric("trustscore_source_reorgs_total", source="chain-test", depth="confirmed")
        == 1
    )


async def test_failover_between_two_nodes_processes_every_block_once(
    stack: Stack, tmp_path: Path
) -> None:
    first, second = Anvil(tmp_path).start(), Anvil(tmp_path).start()
    try:
        chain = Driver([first, second])
        owner, alice = chain.accounts[0], chain.accounts[1]
        nft, deployed = chain.deploy("TestNFT")
        running = await start_source(
            stack,
            settings_for(
                [first.url, second.url],
                contracts=frozenset({nft}),
                from_block=deployed,
                confirmations=1,
            ),
        )
        mints = [chain.call(owner, "TestNFT", nft, "mint", alice, n) for n in range(1, 4)]
        await running.wait_processed(mints[-2].block)
        assert chain.block_hash(first, mints[-1].block) == chain.block_hash(second, mints[-1].block)
        assert (
            running.metric("trustscore_source_provider_active", provider=f"127.0.0.1:{first.port}")
            == 1
        )
        first.kill()  # the active provider dies mid-stream
        chain.nodes = [second]
        mints += [chain.call(owner, "TestNFT", nft, "mint", alice, n) for n in range(4, 7)]
        chain.mine(1)
        await running.wait_processed(mints[-1].block)
        await running.halt()
    finally:
        first.stop()
        second.stop()

    got = await published(stack, 6)
    assert [e["token_id"] for e in got] == ["1", "2", "3", "4", "5", "6"]  # once each, in order
    assert [e["event_id"] for e in got] == [f"{m.tx_hash}:0" for m in mints]
    second_label = f"127.0.0.1:{second.port}"
    assert running.metric("trustscore_source_provider_switches_total") == 1
    assert running.metric("trustscore_source_provider_active", provider=second_label) == 1
    assert (
        running.metric(
            "trustscore_source_provider_errors_total",
            provider=f"127.0.0.1:{first.port}",
            kind="error",
        )
        >= 1
    )


async def test_backfill_splits_ranges_a_provider_refuses(stack: Stack, anvil: Anvil) -> None:
    chain = Driver([anvil])
    owner, alice = chain.accounts[0], chain.accounts[1]
    nft, deployed = chain.deploy("TestNFT")
    mints = []
    for token in range(1, 6):
        mints.append(chain.call(owner, "TestNFT", nft, "mint", alice, token))
        chain.mine(2)  # history with empty blocks between the mints
    head = chain.mine(2)
    asked: list[tuple[int, int]] = []
    async with limited_logs_proxy(anvil.url, max_blocks=4, asked=asked) as url:
        running = await start_source(
            stack,
            settings_for([url], contracts=frozenset({nft}), from_block=deployed, max_range=2000),
        )
        await running.wait_processed(head - 2)
        await running.halt()
    got = await published(stack, 5)
    assert [e["event_id"] for e in got] == [f"{m.tx_hash}:0" for m in mints]
    assert asked[0] == (deployed, head - 2)  # the whole backfill first, refused
    assert running.metric("trustscore_source_range_splits_total", source="chain-test") >= 2
    accepted = [r for r in asked if r[1] - r[0] + 1 <= 4]
    covered = sorted(b for first, last in accepted for b in range(first, last + 1))
    assert covered == list(range(deployed, head - 1))  # every block read exactly once


@contextlib.asynccontextmanager
async def limited_logs_proxy(
    upstream: str, max_blocks: int, asked: list[tuple[int, int]]
) -> AsyncIterator[str]:
    """A JSON-RPC proxy that refuses eth_getLogs over more than `max_blocks` blocks the way
    hosted providers do, and forwards everything else."""

    async def handle(request: web.Request) -> web.Response:
        call = await request.json()
        if call["method"] == "eth_getLogs" and "fromBlock" in call["params"][0]:
            query = call["params"][0]
            first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            asked.append((first, last))
            if last - first + 1 > max_blocks:
                error = {"code": -32005, "message": "query returned more than 10000 results"}
                return web.json_response({"jsonrpc": "2.0", "id": call["id"], "error": error})
        async with aiohttp.ClientSession() as http, http.post(upstream, json=call) as answer:
            return web.Response(body=await answer.read(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_a_lagging_provider_is_left_for_one_that_keeps_up(
    stack: Stack, tmp_path: Path
) -> None:
    first, second = Anvil(tmp_path).start(), Anvil(tmp_path).start()
    try:
        chain = Driver([first, second])
        owner, alice = chain.accounts[0], chain.accounts[1]
        nft, deployed = chain.deploy("TestNFT")
        running = await start_source(
            stack,
            settings_for(
                [second.url, first.url],  # the second node is preferred
                contracts=frozenset({nft}),
                from_block=deployed,
                confirmations=1,
                max_lag=2,
            ),
        )
        before = chain.call(owner, "TestNFT", nft, "mint", alice, 1)
        chain.mine(1)
        await running.wait_processed(before.block)
        behind = f"127.0.0.1:{second.port}"
        assert running.metric("trustscore_source_provider_active", provider=behind) == 1
        # The first node runs 4 blocks ahead: the second lags by more than max_lag.
        resume_time = chain.timestamp
        chain.nodes = [first]
        ahead = chain.call(owner, "TestNFT", nft, "mint", alice, 2)
        chain.mine(3)
        await running.wait_processed(ahead.block)
        assert running.metric("trustscore_source_provider_switches_total") == 1
        assert (
            running.metric("trustscore_source_provider_errors_total", provider=behind, kind="lag")
            == 1
        )
        # The second node catches up with the very same blocks; the source stays where it is.
        chain.nodes, chain.timestamp = [second], resume_time
        assert chain.call(owner, "TestNFT", nft, "mint", alice, 2).tx_hash == ahead.tx_hash
        chain.mine(3)
        assert chain.block_hash(first, ahead.block + 3) == chain.block_hash(second, ahead.block + 3)
        chain.nodes = [first, second]
        after = chain.call(owner, "TestNFT", nft, "mint", alice, 3)
        chain.mine(1)
        await running.wait_processed(after.block)
        await running.halt()
    finally:
        first.stop()
        second.stop()
    got = await published(stack, 3)
    assert [e["event_id"] for e in got] == [f"{m.tx_hash}:0" for m in (before, ahead, after)]
    assert running.metric("trustscore_source_provider_switches_total") == 1


class CrashBeforeCheckpoint(Exception):
    pass


async def test_crash_between_publish_and_checkpoint_repeats_ids_never_skips(
    stack: Stack, anvil: Anvil
) -> None:
    chain = Driver([anvil])
    owner, alice = chain.accounts[0], chain.accounts[1]
    nft, deployed = chain.deploy("TestNFT")
    settings = settings_for([anvil.url], contracts=frozenset({nft}), from_block=deployed)
    running = await start_source(stack, settings)
    first = chain.call(owner, "TestNFT", nft, "mint", alice, 1)
    chain.mine(2)
    await running.wait_processed(first.block)

    async def crash(_: object) -> None:
        raise CrashBeforeCheckpoint  # the process dies after publishing, before the checkpoint

    running.checkpoints.save = crash  # type: ignore[method-assign]
    second = chain.call(owner, "TestNFT", nft, "mint", alice, 2)
    chain.mine(2)
    with pytest.raises(CrashBeforeCheckpoint):
        await running.task
    await running.halt()

    restarted = await start_source(stack, settings_for([anvil.url], contracts=frozenset({nft})))
    third = chain.call(owner, "TestNFT", nft, "mint", alice, 3)
    chain.mine(2)
    await restarted.wait_processed(third.block)
    await restarted.halt()

    got = await published(stack, 4)
    ids = [e["event_id"] for e in got]
    expected = [f"{m.tx_hash}:0" for m in (first, second, third)]
    assert list(dict.fromkeys(ids)) == expected  # no gap, chain order
    assert ids.count(expected[1]) == 2  # the unconfirmed-by-checkpoint block came again ...
    repeats = [e for e in got if e["event_id"] == expected[1]]
    assert repeats[0] == repeats[1]  # ... identical, so the pipeline's dedup drops it


async def test_source_chain_command(stack: Stack, anvil: Anvil) -> None:
    chain = Driver([anvil])
    owner, alice = chain.accounts[0], chain.accounts[1]
    nft, deployed = chain.deploy("TestNFT")
    mint = chain.call(owner, "TestNFT", nft, "mint", alice, 1)
    chain.mine(2)
    port = free_port()
    env = {
        **os.environ,
        "TRUSTSCORE_BROKER": stack.broker.url,
        "TRUSTSCORE_TOPIC_PREFIX": stack.prefix,
        "TRUSTSCORE_CHAIN_POLL_INTERVAL": "0.1",
    }
    command = ["-m", "trustscore_stream.cli", "source", "chain", "--rpc", anvil.url]
    command += ["--contract", nft, "--from-block", str(deployed), "--metrics-port", str(port)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, env=env, stdout=PIPE, stderr=STDOUT
    )
    try:
        got = await published(stack, 1, settle=0)
        metrics = ""
        checkpointed = f'trustscore_source_checkpoint_block{{source="chain-eth"}} {mint.block}.0'
        for _ in range(50):
            async with aiohttp.ClientSession() as http:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as answer:
                        metrics = await answer.text()
            if checkpointed in metrics:
                break
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, output.decode()
    assert [e["event_id"] for e in got] == [f"{mint.tx_hash}:0"]
    assert f'trustscore_source_provider_up{{provider="127.0.0.1:{anvil.port}"}} 1.0' in metrics
