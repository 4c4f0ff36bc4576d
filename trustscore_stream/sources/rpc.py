"""One EVM JSON-RPC provider through web3's AsyncWeb3, with a hard timeout per call and
every failure turned into `RpcFailure` (or `RangeTooLarge`), so the chain source can fail
over without knowing web3's exception zoo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import Web3Exception

from trustscore_stream.sources.erc721 import TRANSFER_TOPIC, PaidTx, hex0x
from trustscore_stream.sources.providers import provider_label
from trustscore_stream.sources.ranges import BlockRange, is_range_too_large
from trustscore_stream.sources.reorg import Header

_T = TypeVar("_T")


class RpcFailure(Exception):
    def __init__(self, provider: str, kind: str, detail: str) -> None:
        super().__init__(f"{provider}: {kind}: {detail}")
        self.provider = provider
        self.kind = kind  # "error" or "timeout"
        self.detail = detail


class RangeTooLarge(RpcFailure):
    """The provider refused an eth_getLogs range as too large: split it, do not fail over."""


class Rpc:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.label = provider_label(url)
        self.timeout_s = timeout_s
        provider = AsyncHTTPProvider(
            url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout_s)},
            # No retries inside web3: a failing provider is a reason to switch, not to wait.
            exception_retry_configuration=None,
        )
        self.w3 = AsyncWeb3(provider)

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def _call(self, what: str, call: Awaitable[_T]) -> _T:
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            raise RpcFailure(self.label, "timeout", f"{what} took over {self.timeout_s}s") from None
        except (Web3Exception, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            detail = f"{what}: {type(exc).__name__}: {exc}"
            if what == "eth_getLogs" and is_range_too_large(str(exc)):
                raise RangeTooLarge(self.label, "error", detail) from None
            raise RpcFailure(self.label, "error", detail) from None

    async def head(self) -> int:
        return int(await self._call("eth_blockNumber", self.w3.eth.block_number))

    async def header(self, number: int) -> Header:
        block = await self._call("eth_getBlockByNumber", self.w3.eth.get_block(number))
        return Header(
            number=int(block["number"]),
            hash=hex0x(block["hash"]),
            parent_hash=hex0x(block["parentHash"]),
            timestamp=int(block["timestamp"]),
        )

    async def transfer_logs(
        self, block_range: BlockRange, contracts: Iterable[str], block_hash: str | None = None
    ) -> list[Mapping[str, Any]]:
        """Transfer logs of a range, or of exactly one block when `block_hash` is given
        (a single-block read by hash cannot mix two versions of a reorged block)."""
        query: dict[str, Any] = {"topics": [TRANSFER_TOPIC]}
        if block_hash is not None:
            query["blockHash"] = block_hash
        else:
            query.update(fromBlock=block_range.first, toBlock=block_range.last)
        addresses = [AsyncWeb3.to_checksum_address(c) for c in sorted(contracts)]
        if addresses:
            query["address"] = addresses
        logs = await self._call("eth_getLogs", self.w3.eth.get_logs(query))  # type: ignore[arg-type]
        return list(logs)

    async def paid(self, tx_hash: str) -> PaidTx:
        tx = await self._call("eth_getTransactionByHash", self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        to = tx.get("to")
        return PaidTx(int(tx["value"]), to.lower() if to else None)
