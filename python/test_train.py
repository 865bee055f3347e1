"""Training: a few CPU steps write a checkpoint and a JSONL log, resume continues exactly (same
weights as an uninterrupted run, each step logged once), Ctrl-C saves and exits with one line, and
bad input (missing corpus, bad field, checkpoint from another config) fails with one clear line."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import export
import train
from config import TrainConfig

MODEL = """arch: llama
vocab_size: 320
dim: 32
n_layers: 1
n_heads: 4
n_kv_heads: 2
hidden_dim: 64
context_length: 32
norm: rmsnorm
norm_eps: 1.0e-5
rope_style: interleaved
mlp: swiglu
tie_embeddings: false
tokenizer: tokenizer.tiktoken
"""


def write_config(tmp: Path, corpus: Path, model: str = MODEL, **train_over) -> Path:
    t = {
        "corpus": str(corpus),
        "out_dir": str(tmp / "run"),
        "batch_size": 4,
        "context": 16,
        "max_steps": 6,
        "eval_interval": 3,
        "eval_batches": 2,
        "log_interval": 2,
        "warmup_steps": 2,
        "threads": 1,
        **train_over,
    }
    p = tmp / "c.yaml"
    p.write_text(model + "train:\n" + "".join(f"  {k}: {v}\n" for k, v in t.items()))
    return p


def test_lr_schedule_warmup_then_cosine() -> None:
    t = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert train.lr_at(0, t) == pytest.approx(0.1)
    assert train.lr_at(9, t) == pytest.approx(1.0)
    assert train.lr_at(60, t) == pytest.approx(0.55)
    assert train.lr_at(110, t) == pytest.approx(0.1)


def test_train_writes_checkpoint_log_and_resumes(tmp_path, corpus_file, capsys) -> None:
    cfg = write_config(tmp_path, corpus_file)
    assert train.main(["--config", str(cfg), "--max-steps", "4", "--no-progress"]) == 0
    run = tmp_path / "run"
    assert {"ckpt.pt", "log.jsonl", "tokenizer.tiktoken", "data"} <= {p.name for p in run.iterdir()}
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 3, 4]
    assert all({"step", "loss", "lr", "tokens_per_s"} <= r.keys() for r in recs if "loss" in r)
    assert math.isclose(recs[-1]["val_ppl"], math.exp(recs[-1]["val_loss"]), rel_tol=1e-3)
    ck = train.load_checkpoint(run / "ckpt.pt")
    assert ck["step"] == 4 and ck["tokens_seen"] == 4 * 4 * 16
    # resume to 6 steps
    assert train.main(["--config", str(cfg), "--resume", "--no-progress"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert train.load_checkpoint(run / "ckpt.pt")["step"] == 6
    # export the result (default out: <out_dir>/model)
    assert export.main(["--config", str(cfg), "--dtype", "f16"]) == 0
    assert (run / "model" / "model.safetensors").is_file()


def test_resume_or_export_with_another_config_fails_cleanly(tmp_path, corpus_file, capsys) -> None:
    cfg = write_config(tmp_path, corpus_file)
    assert train.main(["--config", str(cfg), "--max-steps", "2", "--no-progress"]) == 0
    capsys.readouterr()
    other = tmp_path / "other"
    other.mkdir()
    cfg2 = write_config(other, corpus_file, MODEL.replace("dim: 32", "dim: 48"), out_dir=str(tmp_path / "run"))
    assert train.main(["--config", str(cfg2), "--resume", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "checkpoint is from another config: dim is 32 in the checkpoint but 48 in the config" in err
    # a fresh run into the same out_dir is refused too (it would overwrite that checkpoint)
    assert train.main(["--config", str(cfg2), "--no-progress"]) == 1
    assert "checkpoint is from another config" in capsys.readouterr().err
    out = tmp_path / "exported"
    assert export.main(["--config", str(cfg2), "--out", str(out)]) == 1
    assert "checkpoint is from another config" in capsys.readouterr().err
    assert not out.exists()


def test_missing_corpus_and_bad_field(tmp_path, capsys) -> None:
    cfg = write_config(tmp_path, tmp_path / "nope.txt")
    assert train.main(["--config", str(cfg), "--no-progress"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'nope.txt'}: corpus file does not exist (run `deno task data` first)"
    )
    assert not (tmp_path / "run" / "ckpt.pt").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(MODEL.replace("n_heads: 4", "n_heads: four"))
    assert train.main(["--config", str(bad)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {bad}: field 'n_heads' must be a positive integer, got \"four\""


def test_export_of_a_non_checkpoint(tmp_path, capsys) -> None:
    junk = tmp_path / "ckpt.pt"
    junk.write_bytes(b"not a checkpoint")
    assert export.main(["--checkpoint", str(junk), "--out", str(tmp_path / "o")]) == 1
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert export.main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")]) == 1
    assert "checkpoint does not exist" in capsys.readouterr().err


def log_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_fresh_run_starts_a_new_log_and_keeps_the_old_one(tmp_path, corpus_file, capsys) -> None:
    cfg = write_config(tmp_path, corpus_file)
    run = tmp_path / "run"
    assert train.main(["--config", str(cfg), "--max-steps", "4", "--no-progress"]) == 0
    first = (run / "log.jsonl").read_text()
    assert train.main(["--config", str(cfg), "--max-steps", "2", "--no-progress"]) == 0
    assert f"previous log moved to {run / 'log.jsonl.1'}" in capsys.readouterr().out
    assert log_steps(run) == [2]  # before the fix: [2, 3, 4, 2] (appended to the old log)
    assert (run / "log.jsonl.1").read_text() == first


def interrupt_at(monkeypatch, at_step: int) -> None:
    """Deliver a real SIGINT while step ``at_step + 1`` runs (lr_at is called at its start)."""
    real = train.lr_at

    def lr_at(step, t):
        if step == at_step:
            signal.raise_signal(signal.SIGINT)
        return real(step, t)

    monkeypatch.setattr(train, "lr_at", lr_at)


def test_ctrl_c_saves_and_resume_continues_exactly(tmp_path, corpus_file, capsys, monkeypatch) -> None:
    # Reference: 6 uninterrupted steps.
    a = tmp_path / "a"
    a.mkdir()
    cfg_a = write_config(a, corpus_file)
    assert train.main(["--config", str(cfg_a), "--no-progress"]) == 0
    # The same run, Ctrl-C during step 5 (after the checkpoint at step 3), then --resume.
    b = tmp_path / "b"
    b.mkdir()
    cfg_b = write_config(b, corpus_file)
    interrupt_at(monkeypatch, 4)
    assert train.main(["--config", str(cfg_b), "--no-progress"]) == train.EXIT_INTERRUPTED
    err = capsys.readouterr().err.splitlines()[-1]  # (tqdm's shard progress comes before)
    assert err == (
        f"interrupted: stopped after step 5; {b / 'run' / 'ckpt.pt'} holds step 5 (--resume continues from there)"
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert train.load_checkpoint(b / "run" / "ckpt.pt")["step"] == 5
    monkeypatch.undo()
    assert train.main(["--config", str(cfg_b), "--resume", "--no-progress"]) == 0
    assert log_steps(b / "run") == log_steps(a / "run") == [2, 3, 4, 6]
    ck_a, ck_b = train.load_checkpoint(a / "run" / "ckpt.pt"), train.load_checkpoint(b / "run" / "ckpt.pt")
    assert ck_a["step"] == ck_b["step"] == 6
    for k, v in ck_a["model"].items():  # the same batches and optimizer state: the same weights
        torch.testing.assert_close(ck_b["model"][k], v, rtol=0, atol=1e-6, msg=k)


def test_resume_drops_log_lines_written_after_the_checkpoint(tmp_path, corpus_file, capsys, monkeypatch) -> None:
    cfg = write_config(tmp_path, corpus_file)
    run = tmp_path / "run"
    real = train.lr_at

    def crash(step, t):  # a hard crash (no checkpoint) during step 6: ckpt.pt stays at step 3
        if step == 5:
            raise RuntimeError("simulated crash")
        return real(step, t)

    monkeypatch.setattr(train, "lr_at", crash)
    with pytest.raises(RuntimeError):
        train.main(["--config", str(cfg), "--no-progress"])
    assert log_steps(run) == [2, 3, 4]
    monkeypatch.undo()
    capsys.readouterr()
    assert train.main(["--config", str(cfg), "--resume", "--no-progress"]) == 0
    assert "dropped 1 line(s)" in capsys.readouterr().out
    assert log_steps(run) == [2, 3, 4, 6]  # before the fix: [2, 3, 4, 4, 6]


def test_sigint_to_the_process_exits_130_with_one_line(tmp_path, corpus_file) -> None:
    cfg = write_config(tmp_path, corpus_file, max_steps=100000, eval_interval=2, log_interval=1)
    proc = subprocess.Popen(
        [sys.executable, str(Path(train.__file__)), "--config", str(cfg), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        for line in proc.stdout:  # wait until training steps are running
            if line.startswith("step 2:"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if not x.startswith("tokenizing ")]  # shard progress bar
    assert len(lines) == 1 and lines[0].startswith("interrupted: stopped after step "), err
    step = int(lines[0].split("after step ")[1].split(";")[0])
    assert train.load_checkpoint(tmp_path / "run" / "ckpt.pt")["step"] == step >= 2
