"""Token ids from the Python `tokenizers` library for gollm's tokenizer tests.

Writes tests/fixtures/tokenizers/hf_tokenizer_cases.json:

- "variants": the byte-level tokenizer.json of tests/fixtures/hf/gpt2 with one part replaced
  (the "patch": normalizer, pre_tokenizer and/or added_tokens), and the ids HF gives for a
  set of texts. They cover what gollm must reproduce: special and non-special added tokens
  (HF matches both in any text), an empty added token, NFC / NFKC normalization, every Split
  behaviour (Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous, inverted), a
  Split pattern that leaves text unmatched, and ByteLevel add_prefix_space.
- "llama3": ids of the real Llama-3 tokenizer.json ($GOLLM_ASSETS/tokenizers/llama3, skipped
  when absent) for texts with special-token strings, `encode(text, add_special_tokens=False)`
  (its post-processor adds nothing either way).

Run: python3 python/tokenizer_fixtures.py   (needs: tokenizers)
"""
import copy
import json
import os
import sys
from pathlib import Path

from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("GOLLM_ASSETS", ROOT.parent / "shared" / "assets"))
BASE = ROOT / "tests" / "fixtures" / "hf" / "gpt2" / "tokenizer.json"
OUT = ROOT / "tests" / "fixtures" / "tokenizers" / "hf_tokenizer_cases.json"

TEXTS = [
    "Once upon a time, there was a little girl.",
    "<|endoftext|>Once upon<|endoftext|> a time",
    "The <tool> said hello world and <tool>",
    "cafe\u0301 and caf\u00e9, \ufb01ne \u2460",
    "  two spaces, tabs\t\tand\nnew lines\n\n",
    "digits 1234567 and 3.14 and a1b2c3",
    "no specials here at all",
    "",
]


def split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern},
            "behavior": behavior, "invert": invert}


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
              "use_regex": True}
BYTE_LEVEL_NO_RE = {**BYTE_LEVEL, "use_regex": False}


def added(id_, content, special):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": special}


VARIANTS = {
    "added_non_special": {"added_tokens": [
        added(0, "<|endoftext|>", True), added(320, "<tool>", False),
        added(321, " hello world", False)]},
    "empty_added_token": {"added_tokens": [added(0, "<|endoftext|>", True), added(320, "", True)]},
    "nfc": {"normalizer": {"type": "NFC"}},
    "nfkc": {"normalizer": {"type": "NFKC"}},
    "prefix_space": {"pre_tokenizer": {**BYTE_LEVEL, "add_prefix_space": True}},
    "split_isolated_digits": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"\d", "Isolated"), BYTE_LEVEL]}},
    "split_removed": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"\s+", "Removed"), BYTE_LEVEL_NO_RE]}},
    "split_merged_with_previous": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"[,.]", "MergedWithPrevious"), BYTE_LEVEL_NO_RE]}},
    "split_merged_with_next": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(" ", "MergedWithNext", regex=False), BYTE_LEVEL_NO_RE]}},
    "split_contiguous": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"[a-z]", "Contiguous"), BYTE_LEVEL_NO_RE]}},
    "split_inverted": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"[a-z]+", "Isolated", invert=True), BYTE_LEVEL_NO_RE]}},
    # Matches only digits: the text between matches must be kept (Isolated), not dropped.
    "split_partial_pattern": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"\d+", "Isolated"), BYTE_LEVEL_NO_RE]}},
    # A pattern a backtracking engine cannot finish on long runs of 'a'.
    "split_catastrophic": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"(a|a)*b", "Isolated"), BYTE_LEVEL_NO_RE]}},
}


def main():
    base = json.loads(BASE.read_text())
    variants = []
    for name, patch in VARIANTS.items():
        j = copy.deepcopy(base)
        j.update(patch)
        tok = Tokenizer.from_str(json.dumps(j))
        texts = TEXTS + (["a" * 30 + "b" + "a" * 30] if name == "split_catastrophic" else [])
        variants.append({"name": name, "patch": patch, "cases": [
            {"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]})
    out = {"source": f"python tokenizers {__import__('tokenizers').__version__}", "variants": variants}
    llama3 = ASSETS / "tokenizers" / "llama3" / "tokenizer.json"
    if llama3.exists():
        tok = Tokenizer.from_file(str(llama3))
        texts = ["<|begin_of_text|> is a special token string",
                 "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
                 "<|begin_of_text|><|begin_of_text|>x<|end_of_text|>",
                 "half <|begin_of_text and <|eot_id|",
                 "<|reserved_special_token_5|><|finetune_right_pad_id|>"]
        out["llama3"] = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}
                         for t in texts]
    else:
        print(f"skip llama3 ids: {llama3} absent", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
