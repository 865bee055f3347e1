"""pytest setup for python/: import the sibling modules by name and keep torch on one thread."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import torch  # noqa: E402

torch.set_num_threads(1)

#: A small varied English corpus for tokenizer/training tests (no files needed).
SAMPLE_TEXT = """\
Fellow-Citizens of the Senate and House of Representatives: I meet you upon the present occasion
with the feelings which are naturally inspired by a strong impression of the prosperous situation
of our common country. The progress of public credit is witnessed by a considerable rise of stock.
It is a way I have of driving off the spleen and regulating the circulation. Whenever I find myself
growing grim about the mouth; whenever it is a damp, drizzly November in my soul, I go to sea.
The 2nd session began on 12/03/1791; revenues were $4,771,200.00 (about 3.5% more than in 1790).
def encode(text: str) -> list[int]:
    return [ord(c) for c in text]   # code, with    runs of spaces

Naïve café owners in São Paulo sold crème brûlée to Zoë — “quoted” text, ellipses… and emoji 🙂.
"""


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    """A ~60 KB text file: SAMPLE_TEXT with numbered variations."""
    p = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    lines = []
    for i in range(60):
        lines.append(SAMPLE_TEXT.replace("2nd", f"{i}th").replace("November", ["May", "June", "November"][i % 3]))
    p.write_text("\n".join(lines), encoding="utf-8")
    return p
