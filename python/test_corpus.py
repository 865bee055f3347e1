"""check_corpus() and the commands that use it: a binary or mis-encoded corpus fails with one
line naming the first bad byte, a non-zero exit, and nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import data
import tokenizer
import train
from config import GollmError
from corpus import check_corpus
from test_train import write_config

ROOT = Path(__file__).resolve().parent.parent
BINARY = b"header line\n" + bytes(range(256)) * 8  # first invalid byte 0x80 at offset 12 + 128


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BINARY, "not UTF-8 text (byte 0x80 at offset 140)"),
        ("caf\u00e9 ok\n".encode() + b"\xff", "not UTF-8 text (byte 0xff at offset 9)"),
        (b"ab\xe2\x82", "not UTF-8 text (byte 0xe2 at offset 2)"),  # truncated at end of file
        (b"\xc0\xaf", "not UTF-8 text (byte 0xc0 at offset 0)"),  # overlong "/"
        (b"\xed\xa0\x80", "not UTF-8 text (byte 0xed at offset 0)"),  # surrogate
        (b"", "corpus file is empty"),
        (b" \n\n\t ", "corpus file is empty"),
    ],
)
def test_check_corpus_rejects(tmp_path, content: bytes, message: str) -> None:
    p = tmp_path / "c.txt"
    p.write_bytes(content)
    with pytest.raises(GollmError) as e:
        check_corpus(p)
    assert str(e.value) == f"{p}: {message}"


def test_check_corpus_offset_across_chunks(tmp_path, monkeypatch) -> None:
    import corpus

    monkeypatch.setattr(corpus, "_CHUNK", 7)
    p = tmp_path / "c.txt"
    # "é" (2 bytes) and "🙂" (4 bytes) straddle chunk boundaries; the bad byte is at offset 21
    text = "abcdefé" + "xyz🙂" + "pqrstu"
    p.write_bytes(text.encode() + b"\xfe tail")
    assert len(text.encode()) == 21
    with pytest.raises(GollmError, match=r"byte 0xfe at offset 21\)$"):
        check_corpus(p)
    p.write_bytes(text.encode())
    assert check_corpus(p) == 21
    # a sequence cut by the chunk boundary and broken in the next chunk: reported at its start
    p.write_bytes(b"abcde\xe2\x82xyz")
    with pytest.raises(GollmError, match=r"byte 0xe2 at offset 5\)$"):
        check_corpus(p)


def test_check_corpus_accepts_utf8_and_reports_missing(tmp_path, corpus_file) -> None:
    assert check_corpus(corpus_file) == corpus_file.stat().st_size
    with pytest.raises(GollmError, match="corpus file does not exist"):
        check_corpus(tmp_path / "missing.txt")


def _one_error_line(capsys, path) -> None:
    err = capsys.readouterr().err
    assert err == f"error: {path}: not UTF-8 text (byte 0x80 at offset 140)\n"


def test_train_with_binary_corpus_fails_cleanly_and_writes_nothing(tmp_path, capsys) -> None:
    bad = tmp_path / "bin.txt"
    bad.write_bytes(BINARY)
    cfg = write_config(tmp_path, bad, out_dir=str(tmp_path / "runs" / "x"))
    assert train.main(["--config", str(cfg), "--no-progress"]) == 1
    _one_error_line(capsys, bad)
    assert not (tmp_path / "runs").exists()


def test_train_removes_out_dir_it_created_when_tokenizer_training_fails(tmp_path, capsys) -> None:
    small = tmp_path / "small.txt"
    small.write_text("too small a corpus for 318 merges\n")
    cfg = write_config(tmp_path, small, out_dir=str(tmp_path / "runs" / "x"))
    assert train.main(["--config", str(cfg), "--no-progress"]) == 1
    assert "corpus too small" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    # an out_dir that existed before the run is kept
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert train.main(["--config", str(cfg), "--no-progress"]) == 1
    assert (tmp_path / "runs" / "x").is_dir()


def test_tokenizer_cli_with_binary_corpus(tmp_path, capsys) -> None:
    bad = tmp_path / "bin.txt"
    bad.write_bytes(BINARY)
    cfg = write_config(tmp_path, bad)
    assert tokenizer.main(["--config", str(cfg)]) == 1
    _one_error_line(capsys, bad)
    assert not (tmp_path / "run").exists()
    with pytest.raises(GollmError, match="not UTF-8 text"):
        tokenizer.train_bpe(bad, 300, ["<|bos|>", "<|eos|>"], show_progress=False)


def test_data_cli_with_binary_corpus(tmp_path, corpus_file, capsys) -> None:
    tok = tmp_path / "t.tiktoken"
    tokenizer.train_bpe(corpus_file, 300, ["<|bos|>", "<|eos|>"], show_progress=False)[0].save(tok)
    bad = tmp_path / "bin.txt"
    bad.write_bytes(BINARY)
    out = tmp_path / "shards"
    assert data.main(["--corpus", str(bad), "--tokenizer", str(tok), "--out", str(out)]) == 1
    _one_error_line(capsys, bad)
    assert not out.exists()
    # with --config, before the "no tokenizer yet" note too
    cfg = write_config(tmp_path, corpus_file)
    assert data.main(["--config", str(cfg), "--corpus", str(bad)]) == 1
    _one_error_line(capsys, bad)


DENO = shutil.which("deno")
needs_deno = pytest.mark.skipif(DENO is None, reason="deno not on PATH (tasks/data.ts checks skipped)")
UTF8_CASES = [
    b"plain ascii",
    "café 🙂 — ok".encode(),
    b"\x80",
    b"a\xc1\xbf",
    b"\xe0\x9f\x80",
    b"\xe0\xa0\x80\xff",
    b"\xed\x9f\xbf\xed\xa0\x80",
    b"\xf0\x8f\xbf\xbf",
    b"\xf4\x8f\xbf\xbf\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"ok\xf0\x9f\x99",
    b"\xc3(",
    BINARY,
]


@needs_deno
def test_data_ts_utf8_offsets_match_python_codec() -> None:
    """tasks/data.ts utf8ErrorOffset agrees with Python's strict utf-8 codec (e.start) on edge cases."""
    expected = []
    for b in UTF8_CASES:
        try:
            b.decode("utf-8")
            expected.append(-1)
        except UnicodeDecodeError as e:
            expected.append(e.start)
    code = (
        f'import {{ utf8ErrorOffset }} from "{ROOT / "tasks" / "data.ts"}";\n'
        f"const cases = {json.dumps([b.hex() for b in UTF8_CASES])};\n"
        "const hex = (h: string) => new Uint8Array(h.match(/../g)?.map((x) => parseInt(x, 16)) ?? []);\n"
        "console.log(JSON.stringify(cases.map((h) => utf8ErrorOffset(hex(h)))));\n"
    )
    out = subprocess.run([DENO, "eval", "--ext=ts", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == expected


@needs_deno
def test_data_task_with_binary_corpus(tmp_path) -> None:
    bad = tmp_path / "bin.txt"
    bad.write_bytes(BINARY)
    before = sorted(p.name for p in (ROOT / "data").iterdir()) if (ROOT / "data").is_dir() else None
    r = subprocess.run(
        [
            DENO,
            "run",
            "--allow-read",
            "--allow-run",
            "--allow-env",
            str(ROOT / "tasks" / "data.ts"),
            "--corpus",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 1
    assert r.stderr == f"error: {bad}: not UTF-8 text (byte 0x80 at offset 140)\n"
    assert r.stdout == ""
    after = sorted(p.name for p in (ROOT / "data").iterdir()) if (ROOT / "data").is_dir() else None
    assert after == before
