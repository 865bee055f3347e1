"""Export a training checkpoint to a gollm model directory or a Hugging Face directory.

gollm format (docs/DESIGN.md "Checkpoint formats")::

    <out>/config.yaml          model fields in canonical order, tokenizer: tokenizer.tiktoken
    <out>/model.safetensors    canonical tensor names; __metadata__ {format: gollm, format_version: "1"}
    <out>/tokenizer.tiktoken   the tokenizer the model was trained with
    <out>/chat_template.jinja  when the checkpoint has one (python/sft.py)

HF format (``--format hf``): ``LlamaForCausalLM`` (or ``Qwen2ForCausalLM`` when the config
has q/k/v bias, since HF Llama's ``attention_bias`` also biases o_proj) or
``GPT2LMHeadModel``, with config.json, model.safetensors, tokenizer.json and
tokenizer_config.json (the tokenizer adds BOS, as training and gollm do: see
:func:`hf_tokenizer_json`), plus chat_template.jinja when the checkpoint has one. HF Llama
applies RoPE in the ``half`` layout only, so for ``rope_style: interleaved`` the q/k rows of
each head are permuted (as llama2.c's export does) so that HF's rotate_half computes the
same thing. GPT-2's Conv1D weights are stored
transposed (in_features, out_features) and q/k/v are fused into ``c_attn``.

Both writers build the directory under a temporary name and rename it into place, so a
failed export never leaves a half-written directory.

CLI::

    python python/export.py --config configs/tiny.yaml --out models/tiny [--dtype f16] [--format hf]
    python python/export.py --checkpoint runs/tiny/ckpt.pt --out models/tiny
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from config import GollmError, ModelConfig, load_train_config, parse_config
from model import expected_shapes
from tokenizer import TiktokenFile, bytes_to_unicode

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
FORMAT_VERSION = "1"
#: The chat template's file name in both directory formats (transformers ≥ 4.50 reads it too).
CHAT_TEMPLATE_FILE = "chat_template.jinja"


def check_state_dict(c: ModelConfig, sd: dict[str, torch.Tensor], file: str) -> None:
    """Check that ``sd`` holds exactly the canonical tensors of ``c`` with the right shapes.

    Raises:
        GollmError: naming the first missing, mis-shaped or unexpected tensor.
    """
    want = expected_shapes(c)
    for name, shape in want.items():
        if name not in sd:
            raise GollmError(f"{file}: tensor '{name}' is missing (expected shape {list(shape)})")
        if tuple(sd[name].shape) != shape:
            raise GollmError(
                f"{file}: tensor '{name}' has shape {list(sd[name].shape)}, expected {list(shape)} from the config"
            )
    for name in sd:
        if name not in want:
            raise GollmError(f"{file}: tensor '{name}' is not expected by the config")


def _atomic_dir(out: Path, fill) -> None:
    """Create ``out`` by filling a temporary sibling directory and renaming it into place."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_gollm_dir(
    c: ModelConfig,
    sd: dict[str, torch.Tensor],
    tokenizer_text: str | None,
    out: str | Path,
    dtype: str = "f32",
    chat_template: str | None = None,
) -> None:
    """Write a gollm model directory.

    Args:
        c: Model config (its ``tokenizer`` field is rewritten to ``tokenizer.tiktoken`` when
            ``tokenizer_text`` is given).
        sd: Canonical state dict (checked against ``c``).
        tokenizer_text: Contents of the ``.tiktoken`` file, or None (keeps ``c.tokenizer``).
        out: Output directory (replaced atomically).
        dtype: ``f32`` | ``f16`` | ``bf16``.
        chat_template: Jinja chat template written as ``chat_template.jinja`` (what
            ``gollm chat`` renders conversations with), or None for none.
    """
    check_state_dict(c, sd, "<state dict>")
    if tokenizer_text is not None:
        c = parse_config({**c.to_dict(), "tokenizer": "tokenizer.tiktoken"}, "<export>")
    tensors = {k: v.detach().to(DTYPES[dtype]).contiguous() for k, v in sd.items()}

    def fill(d: Path) -> None:
        (d / "config.yaml").write_text(c.to_yaml(), encoding="utf-8")
        save_file(tensors, str(d / "model.safetensors"), metadata={"format": "gollm", "format_version": FORMAT_VERSION})
        os.chmod(d / "model.safetensors", 0o644)
        if tokenizer_text is not None:
            (d / "tokenizer.tiktoken").write_text(tokenizer_text, encoding="utf-8")
        if chat_template is not None:
            (d / CHAT_TEMPLATE_FILE).write_text(chat_template, encoding="utf-8")

    _atomic_dir(Path(out), fill)


def interleaved_to_half(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Permute q/k projection rows from interleaved RoPE pairs (2i, 2i+1) to HF's half layout
    (i, i + head_dim/2), per head (llama2.c export.py ``permute``).

    Args:
        w: (n_heads*head_dim, in_features) weight or (n_heads*head_dim,) bias.

    Returns:
        Same shape; new row ``a*head_dim/2 + i`` of each head = old row ``2i + a``.
    """
    shape = w.shape
    w2 = w.reshape(n_heads, head_dim // 2, 2, -1).transpose(1, 2)
    return w2.reshape(shape).contiguous()


def hf_tokenizer_json(tf: TiktokenFile) -> str:
    """A HF ``tokenizer.json`` (byte-level BPE) equivalent to a ``.tiktoken`` file.

    Merges are recovered from the ranks the way tiktoken's converters do: for each token,
    replay BPE on its bytes with only lower ranks allowed; the last two parts are its merge.

    When the tokenizer has a BOS token, a ``TemplateProcessing`` post-processor
    (``single: "<bos> $A"``, as Llama 3's tokenizer.json has) prepends it, so that
    ``AutoTokenizer(text)`` gives the ids gollm and training use: every document starts with
    BOS (python/data.py), and gollm's tokenizer adds it by default. transformers 5 ignores
    ``add_bos_token`` in tokenizer_config.json for this tokenizer class; the post-processor is
    what it applies. ``add_special_tokens=False`` still gives the bare ids.
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers, processors
    from tokenizers import Tokenizer as HfTokenizer

    b2u = bytes_to_unicode()

    def piece(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    def split(token: bytes, max_rank: int) -> list[bytes]:
        parts = [bytes([x]) for x in token]
        while True:
            best, idx = None, -1
            for i in range(len(parts) - 1):
                r = tf.ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < max_rank and (best is None or r < best):
                    best, idx = r, i
            if best is None:
                return parts
            parts[idx : idx + 2] = [parts[idx] + parts[idx + 1]]

    vocab = {piece(b): r for b, r in tf.ranks.items()}
    merges = []
    for b, r in sorted(tf.ranks.items(), key=lambda kv: kv[1]):
        if len(b) < 2:
            continue
        parts = split(b, r)
        if len(parts) != 2:
            raise GollmError(f"tokenizer: token {b!r} (rank {r}) cannot be built from lower-ranked tokens")
        merges.append((piece(parts[0]), piece(parts[1])))
    tok = HfTokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(tf.pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    for s, _ in sorted(tf.specials.items(), key=lambda kv: kv[1]):
        tok.add_special_tokens([s])
    if tf.bos_id is not None:
        bos = next(s for s, i in tf.specials.items() if i == tf.bos_id)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, tf.bos_id)]
        )
    return tok.to_str()


def hf_state_dict(c: ModelConfig, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map canonical tensors to HF Llama/Qwen2 or GPT-2 names and layouts."""
    out: dict[str, torch.Tensor] = {}
    if c.arch == "llama":
        out["model.embed_tokens.weight"] = sd["tok_embeddings.weight"]
        for i in range(c.n_layers):
            p, h = f"layers.{i}.", f"model.layers.{i}."
            for ours, theirs, heads in (
                ("wq", "q_proj", c.n_heads),
                ("wk", "k_proj", c.n_kv_heads),
                ("wv", "v_proj", 0),
            ):
                for kind in ("weight", "bias"):
                    t = sd.get(f"{p}attn.{ours}.{kind}")
                    if t is None:
                        continue
                    if heads and c.rope_style == "interleaved":
                        t = interleaved_to_half(t, heads, c.head_dim)
                    out[f"{h}self_attn.{theirs}.{kind}"] = t
            out[h + "self_attn.o_proj.weight"] = sd[p + "attn.wo.weight"]
            out[h + "mlp.gate_proj.weight"] = sd[p + "ffn.w1.weight"]
            out[h + "mlp.up_proj.weight"] = sd[p + "ffn.w3.weight"]
            out[h + "mlp.down_proj.weight"] = sd[p + "ffn.w2.weight"]
            out[h + "input_layernorm.weight"] = sd[p + "attn_norm.weight"]
            out[h + "post_attention_layernorm.weight"] = sd[p + "ffn_norm.weight"]
        out["model.norm.weight"] = sd["norm.weight"]
        out["lm_head.weight"] = sd["tok_embeddings.weight"] if c.tie_embeddings else sd["output.weight"]
    else:
        out["transformer.wte.weight"] = sd["tok_embeddings.weight"]
        out["transformer.wpe.weight"] = sd["pos_embeddings.weight"]
        for i in range(c.n_layers):
            p, h = f"layers.{i}.", f"transformer.h.{i}."
            out[h + "ln_1.weight"], out[h + "ln_1.bias"] = sd[p + "attn_norm.weight"], sd[p + "attn_norm.bias"]
            out[h + "ln_2.weight"], out[h + "ln_2.bias"] = sd[p + "ffn_norm.weight"], sd[p + "ffn_norm.bias"]
            qkv_w = torch.cat([sd[p + f"attn.{n}.weight"] for n in ("wq", "wk", "wv")], dim=0)  # (3*dim, dim)
            out[h + "attn.c_attn.weight"] = qkv_w.t()  # Conv1D: (in, out)
            out[h + "attn.c_attn.bias"] = torch.cat([sd[p + f"attn.{n}.bias"] for n in ("wq", "wk", "wv")])
            out[h + "attn.c_proj.weight"] = sd[p + "attn.wo.weight"].t()
            out[h + "attn.c_proj.bias"] = sd[p + "attn.wo.bias"]
            out[h + "mlp.c_fc.weight"] = sd[p + "ffn.w1.weight"].t()
            out[h + "mlp.c_fc.bias"] = sd[p + "ffn.w1.bias"]
            out[h + "mlp.c_proj.weight"] = sd[p + "ffn.w2.weight"].t()
            out[h + "mlp.c_proj.bias"] = sd[p + "ffn.w2.bias"]
        out["transformer.ln_f.weight"], out["transformer.ln_f.bias"] = sd["norm.weight"], sd["norm.bias"]
        if not c.tie_embeddings:
            out["lm_head.weight"] = sd["output.weight"]
    return out


def hf_config(c: ModelConfig, tf: TiktokenFile | None, dtype: str) -> dict:
    """config.json for the HF class matching ``c``.

    Raises:
        GollmError: for a gpt2 config HF GPT-2 cannot express (GQA or head_dim != dim/n_heads),
            or a config that sets an issue #10 field (RoPE scaling, windows, Gemma's traits, ...).
    """
    if c.extensions():
        raise GollmError(
            f"the HF export writes Llama/Qwen2/GPT-2 directories; config field '{c.extensions()[0]}' "
            "(issue #10) has no such layout yet: export a gollm directory instead"
        )
    torch_dtype = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype]
    bos = tf.bos_id if tf else None
    eos = tf.eos_id if tf else None
    if c.arch == "gpt2":
        if c.n_kv_heads != c.n_heads or c.head_dim * c.n_heads != c.dim:
            raise GollmError("HF GPT-2 needs n_kv_heads == n_heads and head_dim == dim / n_heads")
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": c.vocab_size,
            "n_embd": c.dim,
            "n_layer": c.n_layers,
            "n_head": c.n_heads,
            "n_inner": c.hidden_dim,
            "n_positions": c.context_length,
            "n_ctx": c.context_length,
            "layer_norm_epsilon": c.norm_eps,
            "activation_function": "gelu_new",
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "scale_attn_weights": True,
            "tie_word_embeddings": c.tie_embeddings,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "torch_dtype": torch_dtype,
        }
    common = {
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": c.hidden_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "hidden_act": "silu",
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": torch_dtype,
        "attention_dropout": 0.0,
    }
    if c.attn_bias:
        return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "use_sliding_window": False, **common}
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "mlp_bias": False,
        **common,
    }


def write_hf_dir(
    c: ModelConfig,
    sd: dict[str, torch.Tensor],
    tokenizer_text: str | None,
    out: str | Path,
    dtype: str = "f32",
    chat_template: str | None = None,
) -> None:
    """Write a Hugging Face model directory that ``transformers`` loads (see module docstring).

    With ``chat_template``, also ``chat_template.jinja``, which ``apply_chat_template`` uses.
    """
    check_state_dict(c, sd, "<state dict>")
    tf = TiktokenFile.parse(tokenizer_text) if tokenizer_text else None
    cfg = hf_config(c, tf, dtype)
    tensors = {k: v.detach().to(DTYPES[dtype]).contiguous() for k, v in hf_state_dict(c, sd).items()}
    if c.tie_embeddings:
        tensors.pop("lm_head.weight", None)  # tied: HF re-ties it to the embeddings on load

    def fill(d: Path) -> None:
        (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
        os.chmod(d / "model.safetensors", 0o644)
        if tf is not None:
            (d / "tokenizer.json").write_text(hf_tokenizer_json(tf), encoding="utf-8")
            names = {i: s for s, i in tf.specials.items()}
            tc = {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": c.context_length,
                "bos_token": names.get(tf.bos_id) if tf.bos_id is not None else None,
                "eos_token": names.get(tf.eos_id) if tf.eos_id is not None else None,
                "add_bos_token": tf.bos_id is not None,  # as the post-processor does (hf_tokenizer_json)
                "clean_up_tokenization_spaces": False,
            }
            (d / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
        if chat_template is not None:
            (d / CHAT_TEMPLATE_FILE).write_text(chat_template, encoding="utf-8")

    _atomic_dir(Path(out), fill)


#: The one-line usage printed by ``-h`` and when neither --config nor --checkpoint is given.
USAGE = (
    "deno task export -- (--config CONFIG | --checkpoint CKPT --out DIR) [--out DIR] "
    "[--dtype f32|f16|bf16] [--format gollm|hf]"
)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    from train import CKPT_NAME, checkpoint_config_mismatch, load_checkpoint

    ap = argparse.ArgumentParser(
        description="Export a training checkpoint to a gollm (or HF) model directory", usage=USAGE
    )
    ap.add_argument("--config", help="config the checkpoint must come from (also gives <train.out_dir>/ckpt.pt)")
    ap.add_argument("--checkpoint", help="checkpoint path (default <train.out_dir>/ckpt.pt of --config)")
    ap.add_argument("--out", help="output directory, replaced atomically (default <train.out_dir>/model)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--format", choices=["gollm", "hf"], default="gollm")
    args = ap.parse_args(argv)
    try:
        if not args.config and not args.checkpoint:
            ap.print_usage(sys.stderr)
            raise GollmError("export needs --config or --checkpoint")
        mc = None
        ck_path = args.checkpoint
        if args.config:
            mc, t = load_train_config(args.config, "deno task export -- --config; or use --checkpoint with --out")
            ck_path = ck_path or str(Path(t.out_dir) / CKPT_NAME)
            args.out = args.out or str(Path(t.out_dir) / "model")
        if not args.out:
            raise GollmError("export needs --out when only --checkpoint is given")
        ck = load_checkpoint(ck_path)
        try:
            saved = parse_config(ck["model_config"], f"{ck_path} (model_config)")
        except GollmError as e:
            raise GollmError(f"{ck_path}: checkpoint holds an invalid config: {e}") from None
        if mc is not None:
            why = checkpoint_config_mismatch(ck["model_config"], mc)
            if why:
                raise GollmError(f"{ck_path}: checkpoint is from another config: {why} ({args.config})")
        sd = ck["model"]
        check_state_dict(saved, sd, ck_path)
        writer = write_gollm_dir if args.format == "gollm" else write_hf_dir
        writer(saved, sd, ck.get("tokenizer"), args.out, args.dtype, ck.get("chat_template"))
        size = sum(f.stat().st_size for f in Path(args.out).iterdir())
        print(
            f"exported {ck_path} (step {ck.get('step')}) → {args.out} "
            f"[{args.format}, {args.dtype}, {size / 1e6:.2f} MB]"
        )
        return 0
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
