"""`meu eval --reasoner vlm` split over two processes with `accelerate launch` (CPU): the same predictions and metrics
as one process, one merged predictions file, and a killed shard resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from eval.run import main
from finetune.tiny_vlm import build_tiny_vlm

REPO = Path(__file__).resolve().parent.parent
VARYING = ("timings",)  # per-row wall-clock times: the only field allowed to differ between runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(root: Path, base: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", "casme2", "--root", str(root), "--protocol", "loso", "--reasoner", "vlm",
            "--vlm-base", str(base), "--vlm-max-new-tokens", "8", "--flow", "dis", "--progress", "false",
            "--out", str(out), *extra]


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "assistant.cli", "eval", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=540)


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VARYING} for r in rows]


def _metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    return {k: m[k] for k in ("counts", "emotion", "au", "emotion_per_fold")} | {
        "run": {k: v for k, v in m["run"].items() if k != "root"}}


@pytest.fixture(scope="module")
def runs(synth_casme2_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharded")
    base = build_tiny_vlm(tmp / "base")
    one = tmp / "one"
    assert main(_args(synth_casme2_root, base, one, "--batch-size", "2")) == 0
    two = tmp / "two"
    done = _launch(_args(synth_casme2_root, base, two, "--batch-size", "2"), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return base, one, two, done


def test_two_processes_match_one(runs):
    _, one, two, done = runs
    by_key = {r["key"]: r for r in _rows(one)}
    rows = _rows(two)
    assert len(rows) == len(by_key) >= 4
    assert {r["key"]: r for r in rows} == by_key
    assert _metrics(two) == _metrics(one)
    m = json.loads((two / "metrics.json").read_text())
    assert m["this_invocation"]["processes"] == 2 and m["this_invocation"]["clips_run"] == len(rows)
    assert m["run"]["generation"]["stop_ids"] and m["run"]["generation"]["repetition_penalty"] == 1.0
    assert done.stdout.count("# Evaluation:") == 1 and done.stdout.count("; outputs in") == 1  # one report


def test_merge_leaves_one_predictions_file_in_clip_order(runs):
    _, one, two, _ = runs
    assert sorted(p.name for p in two.iterdir() if "predictions" in p.name or p.name.endswith(".done")) == [
        "predictions.jsonl"]
    assert [r["key"] for r in _rows(two)] == [r["key"] for r in _rows(one)]


def test_killed_shard_resumes(runs, synth_casme2_root, tmp_path):
    """A run whose shard 1 stopped early: resuming with two processes runs only the missing clips."""
    base, one, _, _ = runs
    out = tmp_path / "resumed"
    out.mkdir()
    reference = [json.loads(x) for x in (one / "predictions.jsonl").read_text().splitlines()]
    keys = [r["key"] for r in reference]
    # what a killed 2-process run leaves: shard 0 complete, shard 1 with one row of its share
    share = {0: keys[0::2], 1: keys[1::2][:1]}
    for i, ks in share.items():
        rows = [r for r in reference if r["key"] in ks]
        (out / f"predictions.shard-{i:02d}-of-02.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "run_config.json").write_text((one / "run_config.json").read_text())
    done = _launch(_args(synth_casme2_root, base, out, "--batch-size", "2", "--resume"), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["this_invocation"]["clips_run"] == len(keys) - len(share[0]) - len(share[1])
    assert {r["key"]: r for r in _rows(out)} == {r["key"]: r for r in _rows(one)}
    assert _metrics(out) == _metrics(one)
