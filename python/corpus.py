"""Corpus file checks shared by train.py, tokenizer.py and data.py.

A training corpus must be a non-empty file of UTF-8 text. :func:`check_corpus` checks that
before any tokenizer is trained or any shard or directory is written, so a binary or
mis-encoded file fails with one line naming the first bad byte instead of a traceback from
the ``tokenizers`` library or ``str.decode``.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from config import GollmError

_CHUNK = 1 << 20


def check_corpus(path: str | Path) -> int:
    """Check that ``path`` is an existing, non-blank, strictly UTF-8 text file.

    The file is read in 1 MiB chunks with an incremental strict UTF-8 decoder (overlong forms,
    surrogates and truncated sequences are errors, as in Python's ``utf-8`` codec).

    Args:
        path: The corpus file.

    Returns:
        The file size in bytes.

    Raises:
        GollmError: ``<path>: corpus file does not exist (...)``, ``<path>: not UTF-8 text
            (byte 0x.. at offset N)`` (N = byte offset of the first invalid sequence), or
            ``<path>: corpus file is empty`` (no non-whitespace character).

    Example::

        check_corpus("data/sotu/corpus.txt")  # -> 10843573
    """
    p = Path(path)
    if not p.is_file():
        raise GollmError(f"{p}: corpus file does not exist (run `deno task data` first)")
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0  # bytes read so far
    blank = True
    with open(p, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            final = not chunk
            pending = len(dec.getstate()[0])  # undecoded bytes carried from the last chunk
            try:
                text = dec.decode(chunk, final=final)
            except UnicodeDecodeError as e:
                bad = e.object[e.start]
                raise GollmError(
                    f"{p}: not UTF-8 text (byte 0x{bad:02x} at offset {offset - pending + e.start})"
                ) from None
            if blank and text.strip():
                blank = False
            if final:
                break
            offset += len(chunk)
    if blank:
        raise GollmError(f"{p}: corpus file is empty")
    return offset
