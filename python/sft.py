"""Supervised finetuning (SFT) of a gollm model on chat conversations, full or with LoRA.

Pipeline: the base model (a gollm model directory or a training checkpoint) → each
conversation of ``--data`` (JSONL, ``{"messages": [{"role", "content"}, ...]}`` per line, the
OpenAI / HF chat format) rendered with the chat template and tokenized, with a mask of the
assistant tokens (python/chat_template.py ``encode_chat``) → AdamW on the cross-entropy of
the assistant tokens only (system and user turns, role headers and BOS are context, never
targets) → ``<out_dir>/ckpt.pt`` and ``<out_dir>/model/``, a gollm model directory with
``chat_template.jinja`` that ``gollm chat --model <out_dir>/model`` runs.

The chat template is ``--chat-template`` / ``sft.chat_template``, else the base's own
``chat_template.jinja``, else python/chat_template.jinja: plain ``System:`` / ``User:`` /
``Assistant:`` turns with EOS closing each assistant turn, which the default model's
tokenizer (only ``<|bos|>`` and ``<|eos|>``) expresses without new tokens. Generation stops
at that EOS.

LoRA (``--lora-rank R``; Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
Models"), with Hugging Face ``peft``: each target weight W (out × in) stays frozen and
``(lora_alpha / R) · B A`` (B: out × R, zero at the start; A: R × in) is learned beside it;
embeddings and norms stay frozen. The export merges ``W + (lora_alpha / R) · B A`` so the
model directory has the base's tensor names and shapes.

Conversations are batched ``batch_size`` at a time in a shuffled order (a new shuffle each
epoch), padded to the longest; longer than ``sft.context`` tokens are skipped (counted).
The validation loss (assistant tokens, nats/token) is measured before the first step, every
``eval_interval`` steps and at the end, on the last ``val_fraction`` of the shuffled
conversations (on the training ones when ``val_fraction`` is 0 or there is one conversation).
``<out_dir>/log.jsonl`` gets one JSON object per log line (step, loss, lr, assistant_tokens,
elapsed_s; eval lines add val_loss); a fresh run keeps the previous log as ``log.jsonl.1``.
Ctrl-C finishes the current step and stops without exporting (exit status 130); SFT runs
are short and are not resumed.

CLI::

    python python/sft.py --config configs/default.yaml --base models/default \\
        --data python/data/sotu_chat.jsonl [--lora-rank 8] [--max-steps N] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from chat_template import DEFAULT_TEMPLATE_PATH, EncodedChat, encode_chat, read_chat_jsonl
from config import GollmError, ModelConfig, SftConfig, load_config, load_sft_config
from export import CHAT_TEMPLATE_FILE, check_state_dict, write_gollm_dir
from model import Transformer, parameter_count
from tokenizer import Tokenizer
from train import EXIT_INTERRUPTED, LOG_NAME, StopRequest, checkpoint_config_mismatch, load_checkpoint, lr_at
from train import save_checkpoint, start_log

#: Label of a target position that the loss ignores (F.cross_entropy's ignore_index).
IGNORE = -100


@dataclasses.dataclass
class Base:
    """The model SFT starts from.

    Attributes:
        config: Its model config.
        state_dict: Canonical tensors, float32.
        tokenizer_text: Its ``.tiktoken`` file's text.
        chat_template: Its chat template, or None.
        source: Where it came from (named in messages).
    """

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer_text: str
    chat_template: str | None
    source: str


def load_base(path: str | Path) -> Base:
    """Load a gollm model directory (config.yaml, model.safetensors, a ``.tiktoken`` tokenizer,
    optional chat_template.jinja) or a training checkpoint (``ckpt.pt``) as float32.

    Raises:
        GollmError: when the path is missing, the tensors do not match the config, or the
            tokenizer is not a ``.tiktoken`` file (the only kind the Python side encodes).
    """
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        if not (p / "config.yaml").is_file():
            raise GollmError(f"{p}: not a gollm model directory (no config.yaml)")
        c = load_config(p / "config.yaml")
        tok_path = p / c.tokenizer
        if not c.tokenizer.endswith(".tiktoken") or not tok_path.is_file():
            raise GollmError(
                f"{p / 'config.yaml'}: tokenizer is {c.tokenizer!r}; sft needs a .tiktoken tokenizer file beside it"
            )
        try:
            sd = {k: v.float() for k, v in load_file(p / "model.safetensors").items()}
        except Exception as e:  # noqa: BLE001 - missing or malformed file
            raise GollmError(f"{p / 'model.safetensors'}: cannot be read ({type(e).__name__}: {e})") from None
        check_state_dict(c, sd, str(p / "model.safetensors"))
        tpl = p / CHAT_TEMPLATE_FILE
        return Base(
            c,
            sd,
            tok_path.read_text(encoding="utf-8"),
            tpl.read_text(encoding="utf-8") if tpl.is_file() else None,
            str(p),
        )
    from config import parse_config

    ck = load_checkpoint(p)
    c = parse_config(ck["model_config"], f"{p} (model_config)")
    if not ck.get("tokenizer"):
        raise GollmError(f"{p}: checkpoint has no tokenizer")
    sd = {k: v.float() for k, v in ck["model"].items()}
    check_state_dict(c, sd, str(p))
    return Base(c, sd, ck["tokenizer"], ck.get("chat_template"), str(p))


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it, else as is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def pick_template(s: SftConfig, base: Base) -> tuple[str, str]:
    """The chat template text and where it came from (see the module doc for the order)."""
    if s.chat_template:
        path = Path(s.chat_template)
        if not path.is_file():
            raise GollmError(f"{path}: chat template file does not exist")
        return path.read_text(encoding="utf-8"), str(path)
    if base.chat_template is not None:
        return base.chat_template, f"{base.source} ({CHAT_TEMPLATE_FILE})"
    return DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8"), _shown(DEFAULT_TEMPLATE_PATH)


def make_batch(examples: list[EncodedChat], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for next-token prediction on the assistant tokens only.

    Args:
        examples: Conversations, each at least 2 tokens.
        pad_id: Id used for padding the inputs (its targets are ignored).

    Returns:
        ``(x, y)``, each (batch, longest - 1) int64: ``x`` the ids but the last, ``y`` the next
        id where that id is an assistant token, else :data:`IGNORE` (also on padding).
    """
    n = max(len(e.ids) for e in examples) - 1
    x = torch.full((len(examples), n), pad_id, dtype=torch.long)  # (batch, n)
    y = torch.full((len(examples), n), IGNORE, dtype=torch.long)  # (batch, n)
    for b, e in enumerate(examples):
        k = len(e.ids) - 1
        x[b, :k] = torch.tensor(e.ids[:-1])
        y[b, :k] = torch.tensor([t if a else IGNORE for t, a in zip(e.ids[1:], e.assistant[1:], strict=True)])
    return x.to(device), y.to(device)


def assistant_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the positions whose target is an assistant token.

    Args:
        logits: (batch, seq, vocab_size).
        y: (batch, seq) targets, :data:`IGNORE` where the loss does not count.
        reduction: ``mean`` (per assistant token) or ``sum``.
    """
    flat = logits.float().reshape(-1, logits.size(-1))  # (batch * seq, vocab_size)
    return F.cross_entropy(flat, y.reshape(-1), ignore_index=IGNORE, reduction=reduction)


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: list[EncodedChat], batch_size: int, pad_id: int, device: str) -> float:
    """Mean assistant-token cross-entropy (nats/token) over ``examples``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        x, y = make_batch(examples[i : i + batch_size], pad_id, device)
        total += assistant_loss(model(x), y, "sum").item()
        count += int((y != IGNORE).sum())
    model.train(was_training)
    return total / max(1, count)


def add_lora(model: Transformer, s: SftConfig) -> torch.nn.Module:
    """Wrap ``model`` with peft LoRA adapters on ``s.lora_targets`` (everything else frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise GollmError("--lora-rank needs the peft package: pip install -r python/requirements.txt") from None
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in s.lora_targets if t in present]
    if not targets:
        raise GollmError(f"sft.lora_targets: none of {', '.join(s.lora_targets)} is a layer of this model")
    cfg = LoraConfig(r=s.lora_rank, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, target_modules=targets)
    return get_peft_model(model, cfg)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(description="Finetune a gollm model on chat conversations (assistant-token loss)")
    ap.add_argument("--config", required=True, help="YAML config: the model's fields (checked against the base), sft:")
    ap.add_argument("--data", help="chat JSONL, one {messages: [...]} per line (overrides sft.data)")
    ap.add_argument("--base", help="gollm model directory or training checkpoint (default <train.out_dir>/ckpt.pt)")
    ap.add_argument("--out-dir", help="override sft.out_dir (default <train.out_dir>/sft)")
    ap.add_argument("--chat-template", help="Jinja chat template file (default: the base's, else the plain one)")
    ap.add_argument("--max-steps", type=int, help="override sft.max_steps")
    ap.add_argument("--batch-size", type=int, help="override sft.batch_size")
    ap.add_argument("--lr", type=float, help="override sft.lr")
    ap.add_argument("--lora-rank", type=int, help="LoRA rank (0: full finetuning; default sft.lora_rank)")
    ap.add_argument("--lora-alpha", type=float, help="override sft.lora_alpha")
    ap.add_argument("--dtype", help="exported weights: f32 | f16 | bf16 (default sft.dtype)")
    ap.add_argument("--threads", type=int, help="override sft.threads (torch CPU threads)")
    ap.add_argument("--device", help="override sft.device: auto | cpu | cuda")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar (log lines only)")
    args = ap.parse_args(argv)
    over = {
        "data": args.data,
        "base": args.base,
        "out_dir": args.out_dir,
        "chat_template": args.chat_template,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "dtype": args.dtype,
        "threads": args.threads,
        "device": args.device,
    }
    try:
        mc, s = load_sft_config(args.config, over)
        return sft(args.config, mc, s, progress=not args.no_progress)
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the training loop, which turns Ctrl-C into a stop request
        print("interrupted before the first step; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED


def sft(config_path: str, mc: ModelConfig, s: SftConfig, progress: bool = True) -> int:
    """Run SFT as described in the module docstring; returns the exit code (0, or 130 after Ctrl-C).

    Raises:
        GollmError: for a bad base, template, data file or setting (before anything is written).
    """
    from tqdm import tqdm

    if not s.data:
        raise GollmError(f"{config_path}: no chat data: pass --data FILE.jsonl (or set sft.data)")
    base = load_base(s.base)
    why = checkpoint_config_mismatch(base.config.to_dict(), mc)
    if why:
        raise GollmError(f"{base.source}: the base model is not the config's model: {why} ({config_path})")
    tok = Tokenizer.load_text(base.tokenizer_text)
    if tok.eos_id is None:
        raise GollmError(f"{base.source}: the tokenizer has no EOS token, so a reply could never end")
    template, template_from = pick_template(s, base)
    convs = read_chat_jsonl(s.data)

    examples = [encode_chat(tok, template, m) for m in convs]
    kept = [e for e in examples if 2 <= len(e.ids) <= s.context and any(e.assistant[1:])]
    if not kept:
        raise GollmError(f"{s.data}: every conversation is longer than sft.context ({s.context} tokens)")
    order = list(range(len(kept)))
    random.Random(s.seed).shuffle(order)
    kept = [kept[i] for i in order]
    n_val = min(len(kept) - 1, max(1, round(len(kept) * s.val_fraction))) if s.val_fraction and len(kept) > 1 else 0
    train_set = kept[: len(kept) - n_val]
    val_set = kept[len(kept) - n_val :] if n_val else kept

    device = "cuda" if s.device == "auto" and torch.cuda.is_available() else ("cpu" if s.device == "auto" else s.device)
    if device == "cuda" and not torch.cuda.is_available():
        raise GollmError("sft.device is cuda but torch sees no CUDA device")
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    model = Transformer(mc, dropout=s.dropout)
    model.load_state_dict(base.state_dict)
    model.to(device)
    net: torch.nn.Module = add_lora(model, s) if s.lora_rank else model
    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=s.lr,
        betas=(s.beta1, s.beta2),
    )
    pad_id = tok.eos_id
    n_tok = sum(len(e.ids) for e in kept)
    n_asst = sum(sum(e.assistant) for e in kept)
    print(
        f"sft: {base.source} ({mc.arch}, {parameter_count(mc):,} parameters, "
        f"{sum(p.numel() for p in params):,} trained{f', LoRA rank {s.lora_rank}' if s.lora_rank else ''}); "
        f"template {template_from}",
        flush=True,
    )
    print(
        f"data: {s.data}: {len(convs)} conversations ({len(convs) - len(kept)} longer than {s.context} tokens "
        f"skipped), {len(train_set)} train / {len(val_set) if n_val else 0} val"
        f"{'' if n_val else ' (validating on the training conversations)'}; {n_tok:,} tokens, "
        f"{n_asst:,} of them assistant tokens ({100 * n_asst / n_tok:.0f}%)",
        flush=True,
    )

    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    note = start_log(out / LOG_NAME, None)
    if note:
        print(note, flush=True)
    log = open(out / LOG_NAME, "a", encoding="utf-8")
    first_val = evaluate(net, val_set, s.batch_size, pad_id, device)
    log.write(json.dumps({"step": 0, "val_loss": round(first_val, 5)}) + "\n")
    print(f"step 0: val loss {first_val:.4f} (assistant tokens)", flush=True)

    gen = torch.Generator().manual_seed(s.seed)
    perm: list[int] = []
    step, train_time, last_val, seen = 0, 0.0, first_val, 0
    bar = tqdm(total=s.max_steps, desc="sft", disable=not progress, dynamic_ncols=True)
    stop = StopRequest()  # Ctrl-C from here on finishes the current step, then stops
    net.train()
    try:
        while step < s.max_steps and not stop.requested:
            t0 = time.time()
            lr = lr_at(step, s)  # warmup + cosine, as in train.py
            for g in opt.param_groups:
                g["lr"] = lr
            loss_sum, tokens = 0.0, 0
            for _ in range(s.grad_accum):
                if len(perm) < s.batch_size:  # a new epoch: reshuffle
                    perm += torch.randperm(len(train_set), generator=gen).tolist()
                idx, perm = perm[: s.batch_size], perm[s.batch_size :]
                x, y = make_batch([train_set[i] for i in idx], pad_id, device)
                loss = assistant_loss(net(x), y)
                (loss / s.grad_accum).backward()
                loss_sum += loss.item()
                tokens += int((y != IGNORE).sum())
            if s.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            seen += tokens
            train_time += time.time() - t0
            loss_avg = loss_sum / s.grad_accum
            bar.update(1)
            bar.set_postfix(loss=f"{loss_avg:.3f}", val=f"{last_val:.3f}")
            rec: dict[str, Any] = {}
            if step % s.log_interval == 0 or step == s.max_steps:
                rec = {
                    "step": step,
                    "loss": round(loss_avg, 5),
                    "lr": lr,
                    "assistant_tokens": seen,
                    "elapsed_s": round(train_time, 2),
                }
            if step % s.eval_interval == 0 or step == s.max_steps:
                last_val = evaluate(net, val_set, s.batch_size, pad_id, device)
                rec = {**rec, "step": step, "val_loss": round(last_val, 5)}
                bar.write(
                    f"step {step}: train loss {loss_avg:.4f}, val loss {last_val:.4f} (assistant tokens), "
                    f"{train_time:.0f}s"
                )
            if rec:
                log.write(json.dumps(rec) + "\n")
                log.flush()
    finally:
        stop.restore()
        bar.close()
        log.close()
    if stop.requested:
        print(f"interrupted: stopped after step {step}; nothing exported (run sft again to finish)", file=sys.stderr)
        return EXIT_INTERRUPTED

    if s.lora_rank:
        model = net.merge_and_unload()  # W + (lora_alpha / r) B A, back to plain nn.Linear
    sd = {k: v.detach().cpu() for k, v in model.canonical_state_dict().items()}
    ck_path, model_dir = out / "ckpt.pt", out / "model"
    save_checkpoint(
        ck_path,
        {
            "model": sd,
            "model_config": mc.to_dict(),
            "tokenizer": base.tokenizer_text,
            "chat_template": template,
            "step": step,
            "val_loss": last_val,
            "sft_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(s).items()},
            "base": base.source,
        },
    )
    write_gollm_dir(mc, sd, base.tokenizer_text, model_dir, s.dtype, chat_template=template)
    print(
        f"done: {step} steps, {seen:,} assistant tokens, {train_time:.1f}s; val loss {first_val:.4f} -> "
        f"{last_val:.4f} (assistant tokens); exported {model_dir} "
        f"(chat: deno run -A cli/main.ts chat --model {model_dir})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
