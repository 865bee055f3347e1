"""Trained byte-level BPE: the .tiktoken file, tiktoken encoding == the trained `tokenizers` encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_TEXT
from export import hf_tokenizer_json
from fixtures import TOKENIZER_CASES
from tokenizer import GPT2_PATTERN, TiktokenFile, Tokenizer, train_bpe

ROOT = Path(__file__).resolve().parent.parent
VARIED = TOKENIZER_CASES + [SAMPLE_TEXT, "\n\n\n", "    ", "a  b   c    d", "x\u00a0y\u3000z", "🙂🙂🙂"]


@pytest.fixture(scope="module")
def trained(corpus_file):
    return train_bpe(corpus_file, 400, ["<|bos|>", "<|eos|>"], show_progress=False)


def test_ranks_are_ids_and_specials_follow(trained) -> None:
    tf, hf = trained
    assert sorted(tf.ranks.values()) == list(range(len(tf.ranks)))
    assert len(tf.ranks) == 398 and tf.n_vocab == 400
    assert tf.specials == {"<|bos|>": 398, "<|eos|>": 399}
    assert (tf.bos_id, tf.eos_id) == (398, 399)
    assert all(bytes([b]) in tf.ranks for b in range(256))
    # ids in the trained HF tokenizer are the ranks
    for tok, rank in list(tf.ranks.items())[:50]:
        assert hf.decode([rank]) == tok.decode("utf-8", errors="replace") or len(tok) == 1


@pytest.mark.parametrize("text", VARIED)
def test_tiktoken_encoding_reproduces_trained_tokenizer(trained, text: str) -> None:
    tf, hf = trained
    tok = Tokenizer(tf)
    # HF always matches added special tokens in text; tiktoken does when allowed.
    assert tok.enc.encode(text, allowed_special="all") == hf.encode(text).ids
    assert tok.decode(tok.encode(text)) == text


def test_file_roundtrip_and_format(trained, tmp_path) -> None:
    tf, _ = trained
    p = tmp_path / "t.tiktoken"
    tf.save(p)
    lines = p.read_text().splitlines()
    assert lines[0] == f"#pattern {GPT2_PATTERN}"
    assert lines[-2:] == ["<|bos|> 398", "<|eos|> 399"]
    back = TiktokenFile.load(p)
    assert back.ranks == tf.ranks and back.specials == tf.specials and back.pattern == tf.pattern
    assert Tokenizer(back).encode(SAMPLE_TEXT) == Tokenizer(tf).encode(SAMPLE_TEXT)


def test_bos_eos_and_special_text_is_plain(trained) -> None:
    tok = Tokenizer(trained[0])
    ids = tok.encode("<|eos|>", bos=True, eos=True)
    assert ids[0] == 398 and ids[-1] == 399 and 399 not in ids[1:-1]
    assert tok.decode(ids) == "<|eos|><|eos|>"


def test_hf_tokenizer_json_rebuilt_from_ranks_matches(trained) -> None:
    from tokenizers import Tokenizer as HfTokenizer

    tf, _ = trained
    rebuilt = HfTokenizer.from_str(hf_tokenizer_json(tf))
    tok = Tokenizer(tf)
    for text in VARIED:
        ids = tok.enc.encode(text, allowed_special="all")
        assert rebuilt.encode(text, add_special_tokens=False).ids == ids
        assert rebuilt.encode(text).ids == [tf.bos_id, *ids]  # the post-processor adds BOS, as training does


def test_bad_file_line_is_reported() -> None:
    with pytest.raises(ValueError, match="line 2"):
        TiktokenFile.parse("QQ== 0\nnot-a-line\n", "x.tiktoken")


def test_committed_fixture_ids_match_python_tiktoken() -> None:
    d = ROOT / "tests" / "fixtures" / "pytorch" / "tiny_trained"
    if not d.is_dir():
        pytest.skip("tests/fixtures/pytorch/tiny_trained absent (deno task fixtures)")
    tok = Tokenizer.load(d / "tokenizer.tiktoken")
    exp = json.loads((d / "expected.json").read_text())
    for case in exp["tokenizer_cases"]:
        assert tok.encode(case["text"]) == case["ids"]
