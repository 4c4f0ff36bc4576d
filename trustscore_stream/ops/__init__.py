"""Operations: the `trustscore-stream dlq|rescore|verify|status` commands (docs/operations.md
"Operations commands") and the pure rules behind them and behind web/ops.py."""
