"""Event sources: processes that turn the outside world into CONTRACT §2 envelopes on
`trustscore-events`.

- `chain`: follows EVM JSON-RPC providers (ERC-721 transfers, mints, burns, sales) with
  confirmations, reorg detection, checkpoints and provider failover.
- `poller`: scheduled HTTP polls of market and social APIs, mapped to envelopes by
  configuration (`poll_config`, `fieldpath`, `mapping`) with an anomaly check (`anomaly`).

The decisions (reorg tracking, range splitting, provider choice, mapping, anomaly check) are
pure modules with unit tests; `chain`, `poller`, `publisher` and `checkpoint` do the I/O.
"""
