"""SFT: the assistant-token mask (and that the loss ignores everything else), the loss falling
over a short run, LoRA (only adapters train; the merge equals the adapted forward), the chat
template rendering as transformers renders it, the shipped dataset, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import export
import sft
from chat_data import load_addresses, make_conversations
from chat_template import DEFAULT_TEMPLATE_PATH, assistant_spans, check_messages, encode_chat, read_chat_jsonl
from chat_template import render_chat
from config import GollmError, SftConfig, parse_config
from model import Transformer
from tokenizer import Tokenizer, train_bpe

HERE = Path(__file__).resolve().parent
TEMPLATE = DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8")

TINY = {
    "arch": "llama",
    "vocab_size": 320,
    "dim": 32,
    "n_layers": 1,
    "n_heads": 4,
    "n_kv_heads": 2,
    "hidden_dim": 64,
    "context_length": 128,
    "norm": "rmsnorm",
    "norm_eps": 1e-5,
    "mlp": "swiglu",
    "tie_embeddings": True,
    "tokenizer": "tokenizer.tiktoken",
}

CONVS = [
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Who gave the 1862 address?"},
        {"role": "assistant", "content": "Abraham Lincoln."},
    ],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hello there."}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ],
    [{"role": "user", "content": "What year was the first address?"}, {"role": "assistant", "content": "1790."}],
]


@pytest.fixture(scope="module")
def tok_text(corpus_file) -> str:
    tf, _ = train_bpe(corpus_file, 320, ["<|bos|>", "<|eos|>"], show_progress=False)
    return tf.to_text()


@pytest.fixture(scope="module")
def tok(tok_text: str) -> Tokenizer:
    return Tokenizer.load_text(tok_text)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tok_text: str) -> Path:
    """A gollm model directory with a random tiny model (no chat template)."""
    c = parse_config(TINY, "tiny")
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("base") / "model"
    export.write_gollm_dir(c, Transformer(c).canonical_state_dict(), tok_text, d)
    return d


def write_setup(tmp: Path, base: Path, convs=CONVS, **sft_over) -> Path:
    data = tmp / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in convs))
    s = {
        "base": str(base),
        "data": str(data),
        "out_dir": str(tmp / "sft"),
        "batch_size": 4,
        "max_steps": 30,
        "lr": 3e-3,
        "warmup_steps": 2,
        "eval_interval": 10,
        "log_interval": 5,
        "val_fraction": 0,
        "threads": 1,
        **sft_over,
    }
    cfg = tmp / "c.yaml"
    model = "".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items())
    cfg.write_text(model + "sft:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in s.items()))
    return cfg


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# --- the mask ------------------------------------------------------------------------------------


def test_template_renders_the_plain_turn_format() -> None:
    text = render_chat(TEMPLATE, CONVS[0] + [{"role": "user", "content": "And 1863?"}], True, "<B>", "<E>")
    assert text == (
        "<B>System: Answer briefly.\n\nUser: Who gave the 1862 address?\n\nAssistant: Abraham Lincoln.<E>"
        "\n\nUser: And 1863?\n\nAssistant:"
    )
    with pytest.raises(GollmError, match="role must be system, user or assistant, got tool"):
        render_chat(TEMPLATE, [{"role": "tool", "content": "x"}])


def test_encode_chat_marks_exactly_the_assistant_turns(tok: Tokenizer) -> None:
    conv = [{"role": "system", "content": "Answer briefly."}, *CONVS[2]]
    e = encode_chat(tok, TEMPLATE, conv)
    text = render_chat(TEMPLATE, conv, False, "<|bos|>", "<|eos|>")
    # The mask covers " <content><|eos|>" of each assistant turn, nothing else.
    asst = [i for i, a in zip(e.ids, e.assistant, strict=True) if a]
    other = [i for i, a in zip(e.ids, e.assistant, strict=True) if not a]
    assert tok.enc.decode(asst) == " Hi.<|eos|> You are welcome.<|eos|>"
    assert tok.enc.decode(other) == (
        "<|bos|>System: Answer briefly.\n\nUser: Hi\n\nAssistant:\n\nUser: Thanks\n\nAssistant:"
    )
    assert e.ids[0] == tok.bos_id and e.ids.count(tok.eos_id) == 2
    # Encoding turn by turn gives the ids of the whole text: what gollm chat feeds the model.
    assert e.ids == tok.encode(text, special=True)


def test_masking_gives_no_loss_on_user_and_system_tokens(tok: Tokenizer) -> None:
    c = parse_config(TINY, "tiny")
    torch.manual_seed(1)
    model = Transformer(c)
    examples = [encode_chat(tok, TEMPLATE, m) for m in CONVS[:3]]
    x, y = sft.make_batch(examples, tok.eos_id, "cpu")
    logits = model(x).detach().requires_grad_(True)  # (3, n, vocab)
    loss = sft.assistant_loss(logits, y)
    loss.backward()
    counted = y != sft.IGNORE  # (3, n): targets inside an assistant turn
    assert int(counted.sum()) == sum(sum(e.assistant[1:]) for e in examples) > 0
    # No gradient reaches a position whose target is a system/user/template token or padding...
    assert logits.grad[~counted].abs().max().item() == 0.0
    assert (logits.grad[counted].abs().sum(-1) > 0).all()
    # ...and the loss is the mean negative log-likelihood of the assistant tokens alone.
    logp = F.log_softmax(logits.detach().float(), -1)
    nll = -logp[counted].gather(-1, y[counted][:, None]).squeeze(-1)
    torch.testing.assert_close(loss.detach(), nll.mean())
    # Negative control: an unmasked loss does put gradient on the user/system positions.
    full = logits.detach().requires_grad_(True)
    target = torch.tensor([e.ids[1:] + [0] * (x.shape[1] - len(e.ids) + 1) for e in examples])
    F.cross_entropy(full.reshape(-1, full.size(-1)), target.reshape(-1)).backward()
    assert full.grad[~counted].abs().max().item() > 0


# --- training ------------------------------------------------------------------------------------


def test_sft_lowers_the_assistant_loss_and_exports_a_chat_model(tmp_path, base_dir, capsys) -> None:
    cfg = write_setup(tmp_path, base_dir)
    assert sft.main(["--config", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 conversations (0 longer than 128 tokens skipped), 4 train / 0 val (validating on the training" in out
    recs = log_of(tmp_path / "sft")
    vals = [r["val_loss"] for r in recs if "val_loss" in r]
    assert [r["step"] for r in recs if "val_loss" in r] == [0, 10, 20, 30]
    assert vals == sorted(vals, reverse=True) and vals[-1] < 0.75 * vals[0], vals  # from ln(320) = 5.8
    model = tmp_path / "sft" / "model"
    assert sorted(p.name for p in model.iterdir()) == [
        "chat_template.jinja", "config.yaml", "model.safetensors", "tokenizer.tiktoken"
    ]
    assert (model / "chat_template.jinja").read_text() == TEMPLATE
    assert (model / "tokenizer.tiktoken").read_text() == (base_dir / "tokenizer.tiktoken").read_text()
    new, old = load_file(model / "model.safetensors"), load_file(base_dir / "model.safetensors")
    assert set(new) == set(old) and not torch.equal(new["layers.0.attn.wq.weight"], old["layers.0.attn.wq.weight"])
    # The checkpoint carries the template, so `deno task export --format hf` writes it too.
    hf = tmp_path / "hf"
    assert export.main(["--checkpoint", str(tmp_path / "sft" / "ckpt.pt"), "--out", str(hf), "--format", "hf"]) == 0
    assert (hf / "chat_template.jinja").read_text() == TEMPLATE
    # A second run keeps the first log as log.jsonl.1.
    assert sft.main(["--config", str(cfg), "--no-progress", "--max-steps", "2"]) == 0
    assert [r["step"] for r in log_of(tmp_path / "sft")] == [0, 2]
    assert (tmp_path / "sft" / "log.jsonl.1").is_file()


def test_lora_trains_only_the_adapters_and_merges_them(tmp_path, capsys) -> None:
    # LoRA adapts a trained model (a random one's frozen embeddings and norms leave it nothing to
    # steer): the default model on 16 conversations of the shipped dataset.
    data = tmp_path / "chat.jsonl"
    data.write_text("".join((HERE / "data" / "sotu_chat.jsonl").read_text().splitlines(keepends=True)[:16]))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        (HERE.parent / "configs" / "default.yaml").read_text()
        + f"sft:\n  base: {HERE.parent / 'models' / 'default'}\n  data: {data}\n  out_dir: {tmp_path / 'sft'}\n"
        "  batch_size: 4\n  max_steps: 20\n  lr: 1.0e-3\n  warmup_steps: 2\n  eval_interval: 10\n  val_fraction: 0\n"
        "  threads: 1\n"
    )
    assert sft.main(["--config", str(cfg), "--no-progress", "--lora-rank", "4", "--lora-alpha", "8"]) == 0
    assert "LoRA rank 4" in capsys.readouterr().out
    vals = [r["val_loss"] for r in log_of(tmp_path / "sft") if "val_loss" in r]
    assert vals[2] < vals[1] < vals[0] and vals[-1] < 0.9 * vals[0], vals
    new = load_file(tmp_path / "sft" / "model" / "model.safetensors")
    old = load_file(HERE.parent / "models" / "default" / "model.safetensors")
    assert set(new) == set(old)  # merged: no lora_A / lora_B tensors, the base's names
    for name, t in old.items():
        frozen = not name.endswith(tuple(f"{x}.weight" for x in ("wq", "wk", "wv", "wo", "w1", "w2", "w3")))
        assert torch.equal(new[name], t.float()) == frozen, name  # embeddings and norms untouched, targets changed


def test_lora_merge_equals_the_adapted_forward() -> None:
    c = parse_config(TINY, "tiny")
    torch.manual_seed(2)
    model = Transformer(c).eval()
    w0 = model.layers[0].attn.wq.weight.detach().clone()
    net = sft.add_lora(model, SftConfig(lora_rank=4, lora_alpha=8.0))
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {
        f"base_model.model.layers.0.{m}.{x}.lora_{ab}.default.weight"
        for m, xs in (("attn", ("wq", "wk", "wv", "wo")), ("ffn", ("w1", "w2", "w3")))
        for x in xs
        for ab in "AB"
    }
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:  # B starts at zero; make the adapters do something
                p.normal_(0, 0.1)
        x = torch.randint(0, 320, (2, 10))
        adapted = net(x)
        wq = net.base_model.model.layers[0].attn.wq
        a, b = wq.lora_A["default"].weight, wq.lora_B["default"].weight  # (4, dim), (q_dim, 4)
        merged = net.merge_and_unload()
        assert type(merged) is Transformer
        # W + (alpha / r) B A (Hu et al. 2021, eq. 3), computed here from the adapter's own A and B.
        torch.testing.assert_close(merged.layers[0].attn.wq.weight, w0 + (8.0 / 4) * b @ a)
        torch.testing.assert_close(merged(x), adapted, atol=1e-5, rtol=0)


def test_template_renders_and_encodes_as_transformers_does(tmp_path, tok_text: str, tok: Tokenizer) -> None:
    from transformers import AutoTokenizer

    c = parse_config(TINY, "tiny")
    export.write_hf_dir(c, Transformer(c).canonical_state_dict(), tok_text, tmp_path / "hf", chat_template=TEMPLATE)
    ht = AutoTokenizer.from_pretrained(tmp_path / "hf")
    for conv in CONVS:
        for gen in (False, True):
            msgs = conv[:-1] if gen else conv
            ours = render_chat(TEMPLATE, msgs, gen, "<|bos|>", "<|eos|>")
            assert ht.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen) == ours
        ids = ht.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
        assert ids == encode_chat(tok, TEMPLATE, conv).ids


# --- data ----------------------------------------------------------------------------------------


def test_shipped_dataset_fits_the_default_model() -> None:
    path = HERE / "data" / "sotu_chat.jsonl"
    assert path.stat().st_size < 400_000
    convs = read_chat_jsonl(path)
    assert len(convs) >= 900
    tok = Tokenizer.load(HERE.parent / "models" / "default" / "tokenizer.tiktoken")
    longest = 0
    for conv in convs:
        e = encode_chat(tok, TEMPLATE, conv)
        assert any(e.assistant)
        longest = max(longest, len(e.ids))
    assert longest <= 256  # the default model's context_length: nothing is skipped
    sample = encode_chat(tok, TEMPLATE, convs[0])
    assert sample.ids == tok.encode(render_chat(TEMPLATE, convs[0], False, "<|bos|>", "<|eos|>"), special=True)


def test_chat_data_is_made_by_fixed_rules(tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for year, name, party in [
        (1952, "Harry S Truman", "Democratic"),
        (1953, "Harry S Truman", "Democratic"),
        (1953, "Dwight D. Eisenhower", "Republican"),
    ]:
        text = f"Mr. President, Mr. Speaker, members of the Congress of {year}. " + " ".join(
            f"Sentence number {k} of the address speaks about the nation and its people." for k in range(6)
        )
        (src / f"{year}_{name.split()[-1].lower()}.json").write_text(
            json.dumps({"year": year, "name": name, "party": party, "text": text})
        )
    addrs = load_addresses(src)
    convs = make_conversations(addrs, seed=7)
    assert convs == make_conversations(addrs, seed=7)  # deterministic
    answers = [m["content"] for c in convs for m in c if m["role"] == "assistant"]
    assert "Two addresses were given in 1953: one by Dwight D. Eisenhower and one by Harry S Truman." in answers
    assert "Harry S Truman gave 2 State of the Union addresses: in 1952 and 1953." in answers
    for c in convs:
        check_messages({"messages": c}, "<generated>")
    with pytest.raises(GollmError, match="no address files"):
        load_addresses(tmp_path / "nowhere")


# --- errors --------------------------------------------------------------------------------------


def test_bad_chat_data_fails_with_one_line(tmp_path, base_dir, capsys) -> None:
    cfg = write_setup(tmp_path, base_dir)
    data = tmp_path / "chat.jsonl"
    cases = [
        ('{"messages": []}\n', f'error: {data}:1: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}'),
        ('\n{"messages": [{"role": "user", "content": "hi"}]}\n',
         f"error: {data}:2: the conversation has no assistant message (nothing to learn)"),
        ('{"messages": [{"role": "bot", "content": "hi"}]}\n',
         f'error: {data}:1: messages[0].role must be one of system, user, assistant, got "bot"'),
        ("not json\n", f"error: {data}:1: not JSON (Expecting value at column 1)"),
    ]
    for text, want in cases:
        data.write_text(text)
        assert sft.main(["--config", str(cfg), "--no-progress"]) == 1
        assert capsys.readouterr().err.strip() == want
    assert not (tmp_path / "sft").exists()  # nothing written before the data is good


def test_base_and_template_errors(tmp_path, base_dir, capsys) -> None:
    cfg = write_setup(tmp_path, base_dir)
    other = tmp_path / "o.yaml"
    other.write_text(cfg.read_text().replace("dim: 32", "dim: 48"))
    assert sft.main(["--config", str(other), "--no-progress"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {base_dir}: the base model is not the config's model: dim is 32 in the checkpoint but 48 in "
        f"the config ({other})"
    )
    rev = tmp_path / "reversed.jinja"  # renders the newest turn first: turns cannot be located
    rev.write_text("{% for m in messages|reverse %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    assert sft.main(["--config", str(cfg), "--no-progress", "--chat-template", str(rev)]) == 1
    assert "chat template: message 2 (assistant) cannot be located" in capsys.readouterr().err
    with pytest.raises(GollmError, match="cannot be located"):
        assistant_spans(rev.read_text(), CONVS[0], "", "")
    assert sft.main(["--config", str(cfg), "--lora-rank", "-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {cfg}: field 'sft.lora_rank' must be a non-negative integer, got -1"


def test_ctrl_c_stops_after_the_step_and_exports_nothing(tmp_path, base_dir, capsys, monkeypatch) -> None:
    import signal

    cfg = write_setup(tmp_path, base_dir)
    real = sft.lr_at

    def lr_at(step, s):  # a real SIGINT during step 3
        if step == 2:
            signal.raise_signal(signal.SIGINT)
        return real(step, s)

    monkeypatch.setattr(sft, "lr_at", lr_at)
    assert sft.main(["--config", str(cfg), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted: stopped after step 3; nothing exported (run sft again to finish)"
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not (tmp_path / "sft" / "model").exists() and not (tmp_path / "sft" / "ckpt.pt").exists()
