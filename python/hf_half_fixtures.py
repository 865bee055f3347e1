"""Half-precision copies of fixtures of python/hf_fixtures.py, as most Hugging Face checkpoints are
published (bfloat16, or float16): tests/fixtures/hf/NAME_bf16 (or _f16) holds the fixture NAME with
every parameter rounded to that dtype and saved in it by transformers' `save_pretrained`, and an
expected.json with the float32 logits transformers computes from those rounded weights (the
checkpoint upcast to float32, as `from_pretrained(..., torch_dtype=torch.float32)` loads it) and a
greedy continuation (Gemma's embedding scale is the constant rounded to the dtype, as transformers
computes it in the checkpoint's own dtype). The sources exercise every way a loader reshapes an HF tensor: GPT-2's Conv1D
(transposed) and fused c_attn, Phi-3's fused qkv_proj and gate_up_proj, Gemma 2's norms (1 + w).
Reads tests/fixtures/hf/NAME (which must exist) and writes tests/fixtures/hf/NAME_<dtype>. Run
through hf_fixtures.py: `python3 python/hf_fixtures.py half`.
"""

from __future__ import annotations

import json
import shutil

import torch
from transformers import AutoModelForCausalLM

from hf_fixtures import GREEDY, OUT, greedy, logits_of, r6

#: (source fixture, dtype) pairs: bfloat16 is what most checkpoints ship; float16 covers the rest.
HALF_FIXTURES: list[tuple[str, torch.dtype]] = [
    ("gpt2", torch.bfloat16),
    ("phi3", torch.bfloat16),
    ("gemma2", torch.bfloat16),
    ("llama_untied", torch.float16),
]

SUFFIX = {torch.bfloat16: "bf16", torch.float16: "f16"}


def half_fixture(src: str, dtype: torch.dtype) -> None:
    """Writes tests/fixtures/hf/<src>_<dtype>: the fixture's weights rounded to `dtype`, stored in
    it, with transformers' float32 logits on the rounded weights."""
    s, d = OUT / src, OUT / f"{src}_{SUFFIX[dtype]}"
    exp_src = json.loads((s / "expected.json").read_text())
    source = exp_src["source"]
    kw = {"attn_implementation": "eager"} if "eager attention" in source else {}
    model = AutoModelForCausalLM.from_pretrained(s, torch_dtype=torch.float32, **kw)
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))  # exact in float32
    if model.config.model_type.startswith("gemma"):
        # Gemma scales the embedding by sqrt(hidden_size) as a tensor of the hidden states' dtype:
        # in the checkpoint's own dtype that is the rounded constant (gollm's formats/hf_config.ts
        # `inDtype`). The float32 model would use the exact one, so rescale the lookup to match.
        exact = torch.tensor(model.config.hidden_size**0.5, dtype=torch.float32)
        ratio = exact.to(dtype).to(torch.float32) / exact
        model.get_input_embeddings().register_forward_hook(lambda _m, _i, out: out * ratio)
    ids = exp_src["tokens"]
    lg = logits_of(model, ids)
    cont = greedy(model, ids, GREEDY)
    if d.exists():
        shutil.rmtree(d)
    model.to(dtype).save_pretrained(d)
    for f in s.iterdir():  # tokenizer, generation config, gollm.yaml: as the source has them
        if f.is_file() and f.name not in ("expected.json", "config.json") and not f.name.startswith("model."):
            shutil.copy(f, d / f.name)
    stored = json.loads((d / "config.json").read_text()).get("dtype") or json.loads(
        (d / "config.json").read_text()).get("torch_dtype")
    assert stored == str(dtype).removeprefix("torch."), (src, stored)
    exp = {
        "source": source.replace(", float32", f", {SUFFIX[dtype]} weights upcast to float32"),
        "tokens": ids,
        "logits": [[r6(v) for v in row] for row in lg.tolist()],
        "greedy": cont,
    }
    (d / "expected.json").write_text(json.dumps(exp, separators=(",", ":")) + "\n")


def half() -> None:
    """Every fixture of {@link HALF_FIXTURES}."""
    for src, dtype in HALF_FIXTURES:
        half_fixture(src, dtype)
