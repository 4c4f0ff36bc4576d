"""`trustscore-stream simulate` as a user runs it (a subprocess of the real command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from trustscore_stream.cli import main
from trustscore_stream.simulation import SCENARIO_KINDS

ROOT = Path(__file__).resolve().parents[2]


def simulate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "TRUSTSCORE_BROKER"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "trustscore_stream.cli", "simulate", *args],
        cwd=ROOT,  # this checkout's code
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_100k_events_twice_give_identical_files_and_labels(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.jsonl"
        done = simulate("--seed", "7", "--events", "100000", "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert f"100,000 events → {out}" in done.stderr
        outputs.append((out.read_bytes(), Path(f"{out}.labels.json").read_bytes()))
    (events, labels), (events_again, labels_again) = outputs
    assert events == events_again
    assert labels == labels_again
    assert events.count(b"\n") == 100_000
    document = orjson.loads(labels)
    assert document["seed"] == 7 and document["events"] == 100_000
    kinds = {s["kind"] for s in document["scenarios"]}
    assert kinds == set(SCENARIO_KINDS)
    for scenario in document["scenarios"]:
        assert scenario["entities"] and scenario["significant_events"]
        for item in scenario["significant_events"]:
            assert f'"event_id":"{item["event_id"]}"'.encode() in events


def test_labels_path_scenario_choice_and_rate_shape_the_file(tmp_path: Path) -> None:
    out, labels = tmp_path / "ev.jsonl", tmp_path / "truth.json"
    done = simulate(
        "--seed", "3", "--duration", "3600", "--rate", "2", "--out", str(out),
        "--labels", str(labels), "--scenarios", "stolen_nft,wash_trading=2",
        "--collections", "10", "--nfts", "500", "--wallets", "300",
        "--start", "2026-06-01T12:00:00Z",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = out.read_bytes().splitlines()
    assert len(lines) == 7_200  # 3,600 s at 2 events/s
    first, last = orjson.loads(lines[0]), orjson.loads(lines[-1])
    assert first["occurred_at"].startswith("2026-06-01T12:0")
    assert last["occurred_at"].startswith("2026-06-01T12:5") or last["occurred_at"].startswith(
        "2026-06-01T13:0"
    )
    document = orjson.loads(labels.read_bytes())
    assert [s["id"] for s in document["scenarios"]] == [
        "wash_trading-1",
        "wash_trading-2",
        "stolen_nft-1",
    ]


def test_bad_command_lines_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRUSTSCORE_BROKER", raising=False)
    assert main(["simulate", "--events", "10"]) == 2
    assert "no broker: set TRUSTSCORE_BROKER" in capsys.readouterr().err
    for args, message in [
        (["--scenarios", "rugpull"], "unknown scenario 'rugpull'"),
        (["--events", "0"], "at least 1"),
        (["--start", "yesterday"], "'yesterday' is not RFC 3339"),
        (["--start", "2026-01-01T00:00:00"], "has no zone"),
        (["--nfts", "20"], "at least 10"),
        (["--events", "100", "--scenarios", "rug_pull"], "need"),
        (["--batch", "5000"], "--batch must be 1–1000"),
    ]:
        assert main(["simulate", *args, "--out", str(tmp_path / "x.jsonl")]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "x.jsonl").exists()
