"""Train a gollm model from the ``train:`` section of a YAML config.

Pipeline: ``<out_dir>/tokenizer.tiktoken`` (trained here when missing) → shards in
``<out_dir>/data`` (rebuilt when stale) → AdamW with linear warmup and cosine decay to
``min_lr``, gradient accumulation and clipping → validation loss and perplexity every
``eval_interval`` steps → ``<out_dir>/ckpt.pt`` (written atomically at each eval and at the
end) → ``<out_dir>/log.jsonl`` (one JSON object per log line: step, loss, lr, tokens_per_s,
elapsed_s; eval lines add val_loss and val_ppl). A tqdm bar shows progress.

Runs, logs and Ctrl-C:

- A fresh run starts a new ``log.jsonl``; the previous one is kept as ``log.jsonl.1`` (one
  generation, replaced by the next fresh run).
- ``--resume`` loads ``ckpt.pt`` (weights, AdamW state, step, data-sampling RNG state), drops
  the log lines written after the checkpoint's step (a crash or kill can leave some), and
  appends: the log has each step once, and the resumed run draws the same batches an
  uninterrupted run would have.
- Ctrl-C (SIGINT) saves ``ckpt.pt`` at the last completed step (the step in progress is
  discarded), prints one line naming it and exits with status 130; ``--resume`` continues
  from there.

On CUDA: bf16 autocast and ``torch.compile``. Multi-GPU data parallel with torchrun::

    torchrun --nproc_per_node 8 python/train.py --config configs/default.yaml

CPU (this machine)::

    python python/train.py --config configs/tiny.yaml --max-steps 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomic_write import write_atomic
from config import GollmError, ModelConfig, SftConfig, TrainConfig, load_train_config
from corpus import check_corpus
from data import load_shard, prepare, shards_current
from model import Transformer, parameter_count

CKPT_NAME = "ckpt.pt"
LOG_NAME = "log.jsonl"

#: Exit status after Ctrl-C (128 + SIGINT), as shells report an interrupted command.
EXIT_INTERRUPTED = 130


def lr_at(step: int, t: TrainConfig | SftConfig) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup over ``warmup_steps``,
    then cosine decay from ``lr`` to ``min_lr`` at ``max_steps`` (of ``train:`` or ``sft:``)."""
    if t.warmup_steps and step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    span = max(1, t.max_steps - t.warmup_steps)
    frac = min(1.0, (step - t.warmup_steps) / span)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * frac))


def get_batch(
    data: np.ndarray, batch: int, context: int, gen: torch.Generator, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``context + 1`` tokens → inputs (batch, context) and targets (batch, context)."""
    hi = len(data) - context - 1
    if hi <= 0:
        raise GollmError(f"shard has {len(data)} tokens, fewer than train.context + 1 ({context + 1})")
    starts = torch.randint(0, hi, (batch,), generator=gen).tolist()
    w = torch.from_numpy(np.stack([np.asarray(data[s : s + context + 1], dtype=np.int64) for s in starts]))
    x, y = w[:, :-1], w[:, 1:]
    if device.startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def checkpoint_config_mismatch(saved: dict[str, Any], c: ModelConfig) -> str | None:
    """Describe the first model field where a checkpoint's config differs from ``c`` (or None)."""
    want = c.to_dict()
    for k, v in want.items():
        if k == "tokenizer":
            continue
        if saved.get(k) != v:
            return f"{k} is {saved.get(k)!r} in the checkpoint but {v!r} in the config"
    return None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (a dict with ``model``, ``model_config``, ``train_config``,
    ``step``, ``tokenizer`` text, optimizer state).

    Raises:
        GollmError: when the file is missing or is not a gollm training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise GollmError(f"{path}: checkpoint does not exist (run `deno task train` first)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise GollmError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__})") from None
    if not isinstance(ck, dict) or "model" not in ck or "model_config" not in ck:
        raise GollmError(f"{path}: not a gollm training checkpoint (no model / model_config entries)")
    return ck


def save_checkpoint(path: Path, ck: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temp name + rename)."""
    write_atomic(path, lambda tmp: torch.save(ck, tmp))


class StopRequest:
    """Turns SIGINT (Ctrl-C) into a flag the training loop checks between steps.

    A step is never cut in half (an optimizer step interrupted midway would leave some
    parameters updated and others not), and repeated signals (the terminal and the Deno task
    both deliver one) count once. :meth:`restore` puts the previous handler back.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def restore(self) -> None:
        """Reinstall the SIGINT handler that was active before."""
        signal.signal(signal.SIGINT, self._previous)


def start_log(path: Path, resume_step: int | None) -> str | None:
    """Prepare ``log.jsonl`` for a run; return a note for the user, or None.

    A fresh run (``resume_step`` None) moves an existing log to ``<name>.1`` (replacing an
    older one) so the new run starts an empty log. A resumed run keeps the lines up to and
    including ``resume_step`` and drops the rest (lines that cannot be parsed are dropped too),
    so that the steps it repeats are logged once.
    """
    if not path.is_file():
        return None
    if resume_step is None:
        old = path.with_name(path.name + ".1")
        os.replace(path, old)
        return f"note: previous log moved to {old}; this run writes a new {path}"
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ok = int(json.loads(line)["step"]) <= resume_step
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            kept.append(line + "\n")
        else:
            dropped += 1
    if not dropped:
        return None
    write_atomic(path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))
    return f"note: dropped {dropped} line(s) of {path} logged after the checkpoint's step {resume_step}"


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: np.ndarray, t: TrainConfig, device: str, ctx) -> float:
    """Mean cross-entropy over ``eval_batches`` fixed (seeded) validation batches."""
    model.eval()
    gen = torch.Generator().manual_seed(t.seed + 1)
    losses = []
    for _ in range(t.eval_batches):
        x, y = get_batch(data, t.batch_size, t.context, gen, device)
        with ctx:
            logits = model(x)
        losses.append(torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1)).item())
    model.train()
    return float(np.mean(losses))


def _first_missing(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` (or ``path`` itself) that does not exist yet, or None."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(description="Train a gollm model from a config's train: section")
    ap.add_argument("--config", required=True, help="YAML model config with a train: section")
    ap.add_argument("--max-steps", type=int, help="override train.max_steps")
    ap.add_argument("--out-dir", help="override train.out_dir")
    ap.add_argument("--corpus", help="override train.corpus")
    ap.add_argument("--resume", action="store_true", help="continue from <out_dir>/ckpt.pt")
    ap.add_argument("--threads", type=int, help="override train.threads (torch CPU threads)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar (log lines only)")
    args = ap.parse_args(argv)
    try:
        return train(args)
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the training loop, which turns Ctrl-C into a stop request
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("interrupted before the first training step; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED


def train(args: argparse.Namespace) -> int:
    """Run training as described in the module docstring."""
    from tqdm import tqdm

    from tokenizer import Tokenizer, train_bpe

    mc, t = load_train_config(args.config, "deno task train")
    over = {
        k: v
        for k, v in (
            ("max_steps", args.max_steps),
            ("out_dir", args.out_dir),
            ("corpus", args.corpus),
            ("threads", args.threads),
            ("device", args.device),
        )
        if v is not None
    }
    if "max_steps" in over and over["max_steps"] <= 0:
        raise GollmError(f"--max-steps must be a positive integer, got {over['max_steps']}")
    t = dataclasses.replace(t, **over)
    out = Path(t.out_dir)
    ck_path = out / CKPT_NAME

    # Distributed (torchrun) setup.
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, world = 0, 1
    if ddp:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
    master = rank == 0
    if t.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = t.device
        if device == "cuda" and not torch.cuda.is_available():
            raise GollmError("train.device is cuda but torch sees no CUDA device")
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    if t.threads:
        torch.set_num_threads(t.threads)

    # Resume checks first: a checkpoint from another config is refused before any work.
    resume_ck = None
    if args.resume:
        resume_ck = load_checkpoint(ck_path)
        why = checkpoint_config_mismatch(resume_ck["model_config"], mc)
        if why:
            raise GollmError(f"{ck_path}: checkpoint is from another config: {why} ({args.config})")
    elif ck_path.is_file():
        why = checkpoint_config_mismatch(load_checkpoint(ck_path)["model_config"], mc)
        if why:
            raise GollmError(
                f"{ck_path}: checkpoint is from another config: {why} ({args.config}); "
                "set another train.out_dir (--out-dir) or delete it"
            )
        if master:
            print(f"note: starting afresh; {ck_path} will be overwritten (--resume continues it)", flush=True)

    # Tokenizer and shards (rank 0 builds; others wait).
    tok_path = out / "tokenizer.tiktoken"
    corpus = Path(t.corpus)
    data_dir = out / "data"
    if master:
        check_corpus(corpus)  # before anything is written: a bad corpus leaves no out_dir behind
        created = _first_missing(out)  # the top directory this run creates (None: out_dir exists)
        out.mkdir(parents=True, exist_ok=True)
        try:
            if not tok_path.is_file():
                print(f"no tokenizer at {tok_path}: training one (vocab {mc.vocab_size}) on {corpus}", flush=True)
                try:
                    tf, _ = train_bpe(corpus, mc.vocab_size, list(t.special_tokens), show_progress=False)
                except ValueError as e:
                    raise GollmError(str(e)) from None
                tf.save(tok_path)
            if not shards_current(data_dir, corpus, tok_path, t.val_fraction):
                prepare(corpus, tok_path, data_dir, t.val_fraction)
        except BaseException:
            if created is not None:  # this run made out_dir and failed before training: leave nothing behind
                shutil.rmtree(created, ignore_errors=True)
            raise
    if ddp:
        torch.distributed.barrier()
    tok = Tokenizer.load(tok_path)
    if tok.n_vocab != mc.vocab_size:
        raise GollmError(
            f"{tok_path}: tokenizer has {tok.n_vocab} ids but vocab_size is {mc.vocab_size} ({args.config}); "
            "delete it to retrain, or set another train.out_dir"
        )
    train_data, val_data = load_shard(data_dir, "train"), load_shard(data_dir, "val")

    torch.manual_seed(t.seed + rank)
    model = Transformer(mc, dropout=t.dropout).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=t.lr,
        betas=(t.beta1, t.beta2),
        fused=device.startswith("cuda"),
    )
    step, tokens_seen, best_val, train_time = 0, 0, float("inf"), 0.0
    if resume_ck is not None:
        model.load_state_dict(resume_ck["model"])
        opt.load_state_dict(resume_ck["optimizer"])
        step, tokens_seen = resume_ck["step"], resume_ck.get("tokens_seen", 0)
        best_val, train_time = resume_ck.get("val_loss", float("inf")), resume_ck.get("train_time_s", 0.0)
        if master:
            print(f"resumed from {ck_path} at step {step}", flush=True)
    if step >= t.max_steps:
        raise GollmError(f"{ck_path}: checkpoint is already at step {step} ≥ max_steps {t.max_steps}")

    is_cuda = device.startswith("cuda")
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if is_cuda else nullcontext()
    fwd_model: torch.nn.Module = model
    if (t.compile == "auto" and is_cuda) or t.compile is True:
        fwd_model = torch.compile(model)
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd_model = DDP(fwd_model, device_ids=[int(device.split(":")[1])] if is_cuda else None)

    n_params = parameter_count(mc)
    tok_per_step = t.batch_size * t.context * t.grad_accum * world
    if master:
        print(
            f"model: {mc.arch}, {n_params:,} parameters; {len(train_data):,} train tokens, "
            f"{len(val_data):,} val tokens; {tok_per_step:,} tokens/step on {device} x{world}, "
            f"threads {torch.get_num_threads()}",
            flush=True,
        )
    gen = torch.Generator().manual_seed(t.seed * 1000 + rank + step)
    if resume_ck is not None and world == 1 and isinstance(resume_ck.get("rng_state"), torch.Tensor):
        gen.set_state(resume_ck["rng_state"])  # the batches an uninterrupted run would draw next
    log = None
    if master:
        note = start_log(out / LOG_NAME, step if resume_ck is not None else None)
        if note:
            print(note, flush=True)
        log = open(out / LOG_NAME, "a", encoding="utf-8")
    bar = tqdm(
        total=t.max_steps, initial=step, desc="train", disable=not master or args.no_progress, dynamic_ncols=True
    )

    def write_ckpt(val_loss: float) -> None:
        save_checkpoint(
            ck_path,
            {
                "model": model.canonical_state_dict(),
                "optimizer": opt.state_dict(),
                "model_config": mc.to_dict(),
                "train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(t).items()},
                "tokenizer": tok_path.read_text(encoding="utf-8"),
                "step": step,
                "tokens_seen": tokens_seen,
                "val_loss": val_loss,
                "train_time_s": train_time,
                "rng_state": gen.get_state(),
            },
        )

    model.train()
    last_val = best_val
    saved_step = step  # the step ckpt.pt holds (a fresh run has none yet)
    stop = StopRequest()  # Ctrl-C from here on finishes the current step, then saves and exits
    t_log, tok_log = time.time(), 0
    try:
        while step < t.max_steps and not stop.requested:
            t0 = time.time()
            lr = lr_at(step, t)
            for g in opt.param_groups:
                g["lr"] = lr
            loss_sum = 0.0
            for micro in range(t.grad_accum):
                x, y = get_batch(train_data, t.batch_size, t.context, gen, device)
                sync = nullcontext()
                if ddp and micro < t.grad_accum - 1:
                    sync = fwd_model.no_sync()
                with sync, ctx:
                    logits = fwd_model(x)
                    loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
                (loss / t.grad_accum).backward()
                loss_sum += loss.item()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += tok_per_step
            tok_log += tok_per_step
            train_time += time.time() - t0
            loss_avg = loss_sum / t.grad_accum
            if master:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_avg:.3f}", lr=f"{lr:.2e}", val=f"{last_val:.3f}")
                rec: dict[str, Any] = {}
                if step % t.log_interval == 0 or step == t.max_steps:
                    now = time.time()
                    rec = {
                        "step": step,
                        "loss": round(loss_avg, 5),
                        "lr": lr,
                        "tokens_per_s": round(tok_log / max(1e-9, now - t_log), 1),
                        "tokens_seen": tokens_seen,
                        "elapsed_s": round(train_time, 2),
                    }
                    t_log, tok_log = now, 0
                if step % t.eval_interval == 0 or step == t.max_steps:
                    last_val = evaluate(model, val_data, t, device, ctx)
                    best_val = min(best_val, last_val)
                    rec = {**rec, "step": step, "val_loss": round(last_val, 5), "val_ppl": round(math.exp(last_val), 3)}
                    bar.write(
                        f"step {step}: train loss {loss_avg:.4f}, val loss {last_val:.4f}, "
                        f"val ppl {math.exp(last_val):.2f}, {tokens_seen:,} tokens, {train_time:.0f}s"
                    )
                    write_ckpt(last_val)
                    saved_step = step
                if rec and log:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
    finally:
        stop.restore()
    bar.close()
    if stop.requested:  # Ctrl-C: the completed steps are saved (rank 0), the run ends here
        if master:
            if step != saved_step:
                write_ckpt(last_val)
            print(
                f"interrupted: stopped after step {step}; {ck_path} holds step {step} "
                f"(--resume continues from there)",
                file=sys.stderr,
                flush=True,
            )
            log.close()
        if ddp:
            torch.distributed.destroy_process_group()
        return EXIT_INTERRUPTED
    if master:
        print(
            f"done: {step} steps, {tokens_seen:,} tokens, {train_time:.1f}s training, "
            f"val loss {last_val:.4f} (ppl {math.exp(last_val):.2f}); checkpoint {ck_path}",
            flush=True,
        )
        log.close()
    if ddp:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
