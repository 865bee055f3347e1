"""Byte-level BPE tokenizer training and the gollm ``.tiktoken`` file.

Training uses the Hugging Face ``tokenizers`` library (byte-level BPE, GPT-2 pre-tokenizer
regex). The result is saved in the gollm ``.tiktoken`` format (described in the module doc of
tokenizers/tiktoken.ts):

    #pattern <pre-tokenizer regex>
    <base64 of the token's bytes> <rank>      one line per BPE token, rank == id
    <|bos|> 4094                              special tokens: plain text, then the id

Ranks are the ``tokenizers`` ids: the 256 single bytes, then one token per merge in the
order the trainer learned them, so tiktoken's rule "merge the adjacent pair whose
concatenation has the lowest rank" replays the trained merges. Special tokens follow the
ranks. Python encodes with the ``tiktoken`` package, Deno with js-tiktoken
(tokenizers/tiktoken.ts ``TiktokenTokenizer.fromFile``); both run the same algorithm.

CLI::

    python python/tokenizer.py --config configs/tiny.yaml      # trains <out_dir>/tokenizer.tiktoken
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from atomic_write import write_atomic

#: GPT-2's pre-tokenizer regex (same as tiktoken's ``gpt2`` pattern and HF ByteLevel's).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable unicode char map (used by byte-level BPE vocabularies)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


class TiktokenFile:
    """The contents of a gollm ``.tiktoken`` file.

    Attributes:
        ranks: token bytes → rank (== id), ranks contiguous from 0.
        specials: special token text → id (ids after the ranks).
        pattern: pre-tokenizer regex.
    """

    def __init__(self, ranks: dict[bytes, int], specials: dict[str, int], pattern: str = GPT2_PATTERN) -> None:
        self.ranks = ranks
        self.specials = specials
        self.pattern = pattern

    @property
    def n_vocab(self) -> int:
        """Number of ids (max id + 1), special tokens included."""
        return max([*self.ranks.values(), *self.specials.values()]) + 1

    @property
    def bos_id(self) -> int | None:
        """Id of ``<|bos|>`` / ``<|begin_of_text|>`` / ``<s>``, if present."""
        for s in ("<|bos|>", "<|begin_of_text|>", "<s>"):
            if s in self.specials:
                return self.specials[s]
        return None

    @property
    def eos_id(self) -> int | None:
        """Id of ``<|eos|>`` / ``<|endoftext|>`` / ``<|end_of_text|>`` / ``<|eot_id|>`` / ``</s>``, if present."""
        for s in ("<|eos|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "</s>"):
            if s in self.specials:
                return self.specials[s]
        return None

    def to_text(self) -> str:
        """Serialise in the gollm ``.tiktoken`` format (rank order, then specials)."""
        lines = [f"#pattern {self.pattern}"]
        for tok, rank in sorted(self.ranks.items(), key=lambda kv: kv[1]):
            lines.append(f"{base64.b64encode(tok).decode('ascii')} {rank}")
        for text, i in sorted(self.specials.items(), key=lambda kv: kv[1]):
            lines.append(f"{text} {i}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def parse(text: str, file: str = "<tiktoken>") -> TiktokenFile:
        """Parse ``.tiktoken`` text.

        Raises:
            ValueError: naming the file and line for a malformed line.
        """
        ranks: dict[bytes, int] = {}
        specials: dict[str, int] = {}
        pattern = GPT2_PATTERN
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            if line.startswith("#pattern "):
                pattern = line[len("#pattern ") :]
                continue
            if line.startswith("#"):
                continue
            head, _, num = line.rpartition(" ")
            if not head or not num.isdigit():
                raise ValueError(f"{file}: line {n} is not '<token> <rank>': {line[:60]!r}")
            if head.startswith("<") and head.endswith(">") and len(head) > 2:
                specials[head] = int(num)
            else:
                try:
                    ranks[base64.b64decode(head, validate=True)] = int(num)
                except ValueError:
                    raise ValueError(
                        f"{file}: line {n}: {head[:40]!r} is neither base64 nor a <special> token"
                    ) from None
        return TiktokenFile(ranks, specials, pattern)

    @staticmethod
    def load(path: str | Path) -> TiktokenFile:
        """Read a ``.tiktoken`` file."""
        return TiktokenFile.parse(Path(path).read_text(encoding="utf-8"), str(path))

    def save(self, path: str | Path) -> None:
        """Write atomically (temp name + rename)."""
        write_atomic(path, lambda tmp: tmp.write_text(self.to_text(), encoding="utf-8"))

    def encoding(self):  # -> tiktoken.Encoding
        """A ``tiktoken.Encoding`` over these ranks, pattern and specials."""
        import tiktoken

        return tiktoken.Encoding(
            name="gollm", pat_str=self.pattern, mergeable_ranks=self.ranks, special_tokens=self.specials
        )


class Tokenizer:
    """Encoder/decoder over a :class:`TiktokenFile` (the Python twin of tokenizers/tiktoken.ts)."""

    def __init__(self, file: TiktokenFile) -> None:
        self.file = file
        self.enc = file.encoding()
        self.n_vocab = file.n_vocab
        self.bos_id = file.bos_id
        self.eos_id = file.eos_id

    @staticmethod
    def load(path: str | Path) -> Tokenizer:
        """Load from a ``.tiktoken`` file."""
        return Tokenizer(TiktokenFile.load(path))

    @staticmethod
    def load_text(text: str) -> Tokenizer:
        """Load from ``.tiktoken`` text."""
        return Tokenizer(TiktokenFile.parse(text))

    def encode(self, text: str, bos: bool = False, eos: bool = False, special: bool = False) -> list[int]:
        """Text → ids. Special-token text in ``text`` (e.g. ``<|eos|>``) is encoded as ordinary
        text, or with ``special=True`` as the special token's id (as for rendered chat templates)."""
        ids = self.enc.encode(text, allowed_special="all") if special else self.enc.encode_ordinary(text)
        if bos and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Ids → text (BOS dropped; invalid UTF-8 becomes U+FFFD)."""
        return self.enc.decode([i for i in ids if i != self.bos_id], errors="replace")


def train_bpe(
    corpus: str | Path,
    vocab_size: int,
    special_tokens: list[str],
    pattern: str = GPT2_PATTERN,
    show_progress: bool = True,
):  # -> tuple[TiktokenFile, tokenizers.Tokenizer]
    """Train a byte-level BPE with ``tokenizers`` and convert it to tiktoken ranks.

    Args:
        corpus: UTF-8 text file.
        vocab_size: Total ids wanted, special tokens included (≥ 256 + len(special_tokens)).
        special_tokens: Appended after the BPE ranks, in order (first BOS, second EOS).
        pattern: Pre-tokenizer regex.
        show_progress: Show the trainer's progress bar.

    Returns:
        ``(tiktoken_file, hf_tokenizer)`` — the HF tokenizer is the trained one (used by tests
        to check that tiktoken-style encoding reproduces it).

    Raises:
        ValueError: when vocab_size is too small or the corpus too small to learn enough merges.
        GollmError: when the corpus is missing, blank or not UTF-8 (:func:`corpus.check_corpus`).
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HfTokenizer

    from config import GollmError
    from corpus import check_corpus

    n_bpe = vocab_size - len(special_tokens)
    if n_bpe < 256:
        raise ValueError(f"vocab_size {vocab_size} must be at least 256 + {len(special_tokens)} special tokens")
    check_corpus(corpus)
    tok = HfTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=n_bpe,
        min_frequency=2,
        show_progress=show_progress,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    try:
        tok.train([str(corpus)], trainer)
    except Exception as e:  # noqa: BLE001 (tokenizers raises a bare Exception, e.g. invalid UTF-8)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GollmError(f"{corpus}: tokenizer training failed: {first}") from None
    dec = {u: b for b, u in bytes_to_unicode().items()}
    vocab = tok.get_vocab()  # piece -> id
    ranks = {bytes(dec[ch] for ch in piece): i for piece, i in vocab.items()}
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("trained vocabulary ids are not contiguous")
    if len(ranks) < n_bpe:
        raise ValueError(
            f"{corpus}: corpus too small: learned {len(ranks)} BPE tokens, need {n_bpe} for vocab_size {vocab_size}"
        )
    specials = {s: len(ranks) + k for k, s in enumerate(special_tokens)}
    tok.add_special_tokens(list(specials))
    return TiktokenFile(ranks, specials, pattern), tok


def main(argv: list[str] | None = None) -> int:
    """CLI: train the tokenizer named by a config's ``train:`` section (or explicit flags)."""
    from config import GollmError, load_train_config
    from corpus import check_corpus

    ap = argparse.ArgumentParser(description="Train a byte-level BPE tokenizer → <out_dir>/tokenizer.tiktoken")
    ap.add_argument("--config", required=True, help="YAML config with a train: section")
    ap.add_argument("--corpus", help="override train.corpus")
    ap.add_argument("--out", help="output .tiktoken path (default <train.out_dir>/tokenizer.tiktoken)")
    args = ap.parse_args(argv)
    try:
        model, train = load_train_config(args.config, "deno task train:tokenizer")
        corpus = Path(args.corpus or train.corpus)
        size = check_corpus(corpus)
        out = Path(args.out or Path(train.out_dir) / "tokenizer.tiktoken")
        print(
            f"training byte-level BPE: vocab {model.vocab_size} on {corpus} ({size / 1e6:.1f} MB)",
            flush=True,
        )
        try:
            tf, hf = train_bpe(corpus, model.vocab_size, list(train.special_tokens))
        except ValueError as e:
            raise GollmError(str(e)) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        tf.save(out)
        hf_path = out.with_name(out.stem + ".hf.json")
        write_atomic(hf_path, lambda tmp: hf.save(str(tmp)))
        print(f"wrote {out} ({len(tf.ranks)} BPE tokens + {len(tf.specials)} special) and {hf_path}")
        return 0
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
