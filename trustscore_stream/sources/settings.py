"""Settings of the source commands, typed, read from the environment once and overridden
by command-line flags (`trustscore-stream source …`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from trustscore_stream.settings import SettingsError, env_float

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}\Z")


@dataclass(frozen=True, slots=True)
class ChainSettings:
    rpc_urls: tuple[str, ...]
    chain: str = "eth"
    # Blocks a block must be buried under before its events are emitted. 2 suits a dev chain;
    # on Ethereum mainnet use 12 or more (or follow the "finalized" tag, ~64 blocks).
    confirmations: int = 2
    # A provider more than this many blocks behind the best head is treated as unhealthy.
    max_lag: int = 5
    poll_interval_s: float = 1.0
    rpc_timeout_s: float = 10.0
    # Largest eth_getLogs range; halved for a provider that refuses a range as too large.
    max_range: int = 2000
    # Recent block hashes remembered for reorg detection: the deepest reorg it can repair.
    reorg_window: int = 256
    contracts: frozenset[str] = frozenset()  # empty: every ERC-721 contract
    marketplaces: Mapping[str, str] = field(default_factory=dict)  # tx `to` address → name
    currency: str = "ETH"
    name: str = "chain-eth"  # checkpoint key and metric label
    from_block: int | None = None
    metrics_port: int | None = None


def _split_list(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _address(value: str, what: str) -> str:
    if not _ADDRESS.match(value):
        raise SettingsError(f"{what}: {value!r} is not a 0x-prefixed 20-byte address")
    return value.lower()


def parse_marketplaces(items: Sequence[str]) -> dict[str, str]:
    """`0xaddress=name` pairs."""
    out: dict[str, str] = {}
    for item in items:
        address, sep, name = item.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"marketplace {item!r} must look like 0xaddress=name")
        out[_address(address.strip(), "marketplace")] = name.strip()
    return out


def load_chain_settings(
    env: Mapping[str, str] | None = None,
    *,
    rpc_urls: Sequence[str] = (),
    contracts: Sequence[str] = (),
    marketplaces: Sequence[str] = (),
    confirmations: int | None = None,
    from_block: int | None = None,
    metrics_port: int | None = None,
) -> ChainSettings:
    """Environment first (TRUSTSCORE_CHAIN_*), then the flags given here override it."""
    env = os.environ if env is None else env
    urls = tuple(rpc_urls) or tuple(_split_list(env.get("TRUSTSCORE_CHAIN_RPC_URLS")))
    if not urls:
        raise SettingsError("no RPC provider: pass --rpc URL or set TRUSTSCORE_CHAIN_RPC_URLS")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"RPC URL {url!r} must be http:// or https://")
    chain = (env.get("TRUSTSCORE_CHAIN") or "eth").lower()
    watch = list(contracts) or _split_list(env.get("TRUSTSCORE_CHAIN_CONTRACTS"))
    markets = list(marketplaces) or _split_list(env.get("TRUSTSCORE_CHAIN_MARKETPLACES"))
    depth = confirmations
    if depth is None:
        depth = int(env_float(env, "TRUSTSCORE_CHAIN_CONFIRMATIONS", 2, 0))
    if depth < 0:
        raise SettingsError("confirmations must be >= 0")
    if from_block is not None and from_block < 0:
        raise SettingsError("--from-block must be >= 0")
    port = metrics_port
    if port is None and env.get("TRUSTSCORE_SOURCE_METRICS_PORT"):
        port = int(env_float(env, "TRUSTSCORE_SOURCE_METRICS_PORT", 0, 1))
    return ChainSettings(
        rpc_urls=urls,
        chain=chain,
        confirmations=depth,
        max_lag=int(env_float(env, "TRUSTSCORE_CHAIN_MAX_LAG", 5, 0)),
        poll_interval_s=env_float(env, "TRUSTSCORE_CHAIN_POLL_INTERVAL", 1.0, 0.01),
        rpc_timeout_s=env_float(env, "TRUSTSCORE_CHAIN_RPC_TIMEOUT", 10.0, 0.1),
        max_range=int(env_float(env, "TRUSTSCORE_CHAIN_MAX_RANGE", 2000, 1)),
        reorg_window=int(env_float(env, "TRUSTSCORE_CHAIN_REORG_WINDOW", 256, 2)),
        contracts=frozenset(_address(c, "contract") for c in watch),
        marketplaces=parse_marketplaces(markets),
        currency=env.get("TRUSTSCORE_CHAIN_CURRENCY") or "ETH",
        name=env.get("TRUSTSCORE_CHAIN_SOURCE_NAME") or f"chain-{chain}",
        from_block=from_block,
        metrics_port=port,
    )
