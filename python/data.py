"""Corpus → tokenized train/val shards.

Reads a UTF-8 text corpus, splits it into documents at blank lines (``\n\n``), encodes each
as ``[BOS] + ids(document + "\n\n")`` with a gollm ``.tiktoken`` tokenizer (tiktoken
package) with a tqdm progress bar, and writes
``<dir>/train.bin`` and ``<dir>/val.bin``: flat little-endian token ids, ``uint16`` when the
vocabulary has at most 65536 ids, else ``uint32``. ``<dir>/meta.json`` records the dtype,
token counts and the sha256 of the tokenizer and corpus so stale shards are rebuilt.
The validation split is the last ``val_fraction`` of the tokens.

CLI::

    python python/data.py --corpus data/sotu/corpus.txt --tokenizer runs/tiny/tokenizer.tiktoken --out runs/tiny/data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from atomic_write import write_atomic
from config import GollmError
from corpus import check_corpus
from tokenizer import Tokenizer


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_dtype(n_vocab: int) -> np.dtype:
    """``uint16`` when every id fits (n_vocab ≤ 65536), else ``uint32``."""
    return np.dtype(np.uint16) if n_vocab <= 65536 else np.dtype(np.uint32)


def _meta_for(corpus: Path, tokenizer: Path, val_fraction: float) -> dict:
    return {
        "corpus_sha256": sha256_file(corpus),
        "tokenizer_sha256": sha256_file(tokenizer),
        "val_fraction": val_fraction,
        "layout": "bos+document",
    }


def shards_current(out_dir: str | Path, corpus: str | Path, tokenizer: str | Path, val_fraction: float) -> bool:
    """True when ``out_dir`` holds shards made from this corpus, tokenizer and split."""
    meta_path = Path(out_dir) / "meta.json"
    if not meta_path.is_file() or not (Path(out_dir) / "train.bin").is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    want = _meta_for(Path(corpus), Path(tokenizer), val_fraction)
    return all(meta.get(k) == v for k, v in want.items())


def prepare(corpus: str | Path, tokenizer: str | Path, out_dir: str | Path, val_fraction: float = 0.05) -> dict:
    """Tokenize ``corpus`` into ``out_dir/{train,val}.bin`` (+ ``meta.json``).

    Args:
        corpus: UTF-8 text file.
        tokenizer: ``.tiktoken`` file.
        out_dir: Output directory (created).
        val_fraction: Fraction of tokens (the tail) kept for validation, in (0, 0.5).

    Returns:
        The meta dict written to ``meta.json``.

    Raises:
        GollmError: when the corpus or tokenizer is missing, or the corpus is blank or not UTF-8
            text (:func:`corpus.check_corpus`); nothing is written then.
    """
    corpus, tokenizer, out_dir = Path(corpus), Path(tokenizer), Path(out_dir)
    check_corpus(corpus)
    if not tokenizer.is_file():
        raise GollmError(f"{tokenizer}: tokenizer file does not exist (run `deno task train:tokenizer` first)")
    tok = Tokenizer.load(tokenizer)
    dtype = shard_dtype(tok.n_vocab)
    text = corpus.read_text(encoding="utf-8")
    if not text.strip():
        raise GollmError(f"{corpus}: corpus file is empty")
    docs = [d for d in text.split("\n\n") if d.strip()]
    bos = [] if tok.bos_id is None else [tok.bos_id]
    parts: list[np.ndarray] = []
    with tqdm(total=len(text), unit="char", unit_scale=True, desc=f"tokenizing {corpus.name}") as bar:
        for i in range(0, len(docs), 64):
            batch = [d + "\n\n" for d in docs[i : i + 64]]
            for ids in tok.enc.encode_ordinary_batch(batch, num_threads=1):
                parts.append(np.asarray(bos + ids, dtype=dtype))
            bar.update(sum(len(d) for d in batch))
    ids = np.concatenate(parts)
    n_val = max(1, int(len(ids) * val_fraction))
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        **_meta_for(corpus, tokenizer, val_fraction),
        "corpus": str(corpus),
        "tokenizer": str(tokenizer),
        "dtype": dtype.name,
        "n_vocab": tok.n_vocab,
        "n_train": int(len(ids) - n_val),
        "n_val": int(n_val),
    }
    for name, arr in (("train.bin", ids[:-n_val]), ("val.bin", ids[-n_val:])):
        write_atomic(out_dir / name, arr.astype(dtype.newbyteorder("<")).tofile)
    write_atomic(out_dir / "meta.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    print(
        f"wrote {out_dir}/train.bin ({meta['n_train']:,} tokens) and val.bin ({meta['n_val']:,} tokens), {dtype.name}"
    )
    return meta


def load_shard(out_dir: str | Path, split: str) -> np.ndarray:
    """Memory-map ``<out_dir>/<split>.bin`` with the dtype recorded in ``meta.json``."""
    meta = json.loads((Path(out_dir) / "meta.json").read_text())
    return np.memmap(Path(out_dir) / f"{split}.bin", dtype=np.dtype(meta["dtype"]).newbyteorder("<"), mode="r")


def main(argv: list[str] | None = None) -> int:
    """CLI: tokenize a corpus into shards, from explicit paths or from a config's train: section."""
    from config import load_train_config

    ap = argparse.ArgumentParser(description="Tokenize a text corpus into train/val shards")
    ap.add_argument("--config", help="YAML config: corpus, tokenizer and shard dir from its train: section")
    ap.add_argument("--corpus", help="text file (default: train.corpus)")
    ap.add_argument("--tokenizer", help=".tiktoken file (default: <train.out_dir>/tokenizer.tiktoken)")
    ap.add_argument("--out", help="output directory (default: <train.out_dir>/data)")
    ap.add_argument("--val-fraction", type=float)
    args = ap.parse_args(argv)
    try:
        val_fraction = args.val_fraction
        corpus, tokenizer, out = args.corpus, args.tokenizer, args.out
        if args.config:
            _, t = load_train_config(args.config, "deno task data -- --config")
            corpus = corpus or t.corpus
            tokenizer = tokenizer or str(Path(t.out_dir) / "tokenizer.tiktoken")
            out = out or str(Path(t.out_dir) / "data")
            val_fraction = val_fraction if val_fraction is not None else t.val_fraction
            check_corpus(corpus)
            if not Path(tokenizer).is_file():
                print(
                    f"{tokenizer} does not exist yet: run `deno task train:tokenizer -- --config {args.config}` "
                    "(or `deno task train`, which makes tokenizer and shards itself)"
                )
                return 0
        if not (corpus and tokenizer and out):
            raise GollmError("data.py needs --config, or --corpus, --tokenizer and --out")
        prepare(corpus, tokenizer, out, 0.05 if val_fraction is None else val_fraction)
        return 0
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
