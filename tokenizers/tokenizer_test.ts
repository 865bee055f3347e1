/**
 * StreamDecoder (tokenizers/tokenizer.ts): pushing tokens one at a time never emits a broken
 * character — bytes of a character split across tokens are held until it is whole — and
 * the pieces join to exactly the decoded text.
 */
import assert from "node:assert/strict";
import { TiktokenTokenizer } from "./tiktoken.ts";
import { StreamDecoder, type Tokenizer } from "./tokenizer.ts";

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function assertWholeChars(piece: string, what: string): void {
  assert.ok(!piece.includes("\ufffd"), `${what}: emitted U+FFFD in ${JSON.stringify(piece)}`);
  assert.ok(!LONE_SURROGATE.test(piece), `${what}: emitted half a surrogate pair`);
}

const TEXTS = [
  "héllo wörld",
  "中文字符 and 日本語",
  "emoji 😀👍🏽 and family 👨‍👩‍👧",
  "combining e\u0301 and astral 𝔘𝔫𝔦 𓀀",
  "mixed €100 — “quotes” ½",
];

Deno.test("StreamDecoder.push() of single-byte tokens holds partial characters until complete", async () => {
  const tok = await TiktokenTokenizer.builtin("gpt2");
  // The gpt2 id of each single byte.
  const byteId = new Int32Array(256).fill(-1);
  for (let id = 0; id < tok.vocabSize; id++) {
    const b = tok.tokenBytes(id);
    if (b.length === 1) byteId[b[0]] = id;
  }
  assert.ok(byteId.every((id) => id >= 0));
  for (const text of TEXTS) {
    const bytes = new TextEncoder().encode(text);
    const d = new StreamDecoder(tok);
    let out = "";
    for (let i = 0; i < bytes.length; i++) {
      const piece = d.push(byteId[bytes[i]]);
      assertWholeChars(piece, `${text} byte ${i}`);
      // A piece appears exactly when a character's last byte arrives.
      const isLastByte = i + 1 === bytes.length || (bytes[i + 1] & 0xc0) !== 0x80;
      assert.equal(piece.length > 0, isLastByte, `${text} byte ${i}`);
      out += piece;
    }
    out += d.flush();
    assert.equal(out, text);
  }
});

Deno.test("StreamDecoder joins real BPE tokens that split characters into the decoded text", async () => {
  for (const name of ["gpt2", "cl100k_base"]) {
    const tok = await TiktokenTokenizer.builtin(name);
    let splits = 0; // token boundaries inside a character (so the test means something)
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      let acc: number[] = [];
      for (const id of ids) {
        acc = acc.concat([...tok.tokenBytes(id)]);
        try {
          new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(acc));
          acc = [];
        } catch {
          splits++;
        }
      }
      const d = new StreamDecoder(tok);
      let out = "";
      for (const id of ids) {
        const piece = d.push(id);
        assertWholeChars(piece, `${name} ${text}`);
        out += piece;
      }
      out += d.flush();
      assert.equal(out, text);
      assert.equal(out, tok.decode(ids));
    }
    assert.ok(splits >= 3, `${name}: only ${splits} split characters`);
  }
});

Deno.test("StreamDecoder.flush() turns a dangling partial character into U+FFFD", async () => {
  const tok = await TiktokenTokenizer.builtin("gpt2");
  const ids = tok.encode("😀");
  const d = new StreamDecoder(tok);
  assert.equal(d.push(ids[0]), "");
  assert.equal(d.flush(), "\ufffd");
});

/** A tiny fake SentencePiece-like tokenizer: id → bytes, BOS 0, dummy-prefix stripping. */
function fakeTokenizer(pieces: Uint8Array[]): Tokenizer {
  return {
    vocabSize: pieces.length,
    bosId: 0,
    eosIds: [1],
    addBos: true,
    stripLeadingSpace: true,
    encode: () => [],
    decode: () => "",
    tokenBytes: (id: number) => {
      if (!(id >= 0 && id < pieces.length)) throw new RangeError(`id ${id}`);
      return pieces[id];
    },
    tokenPiece: (id: number) => String(id),
    toFile: () => ({ name: "x", bytes: new Uint8Array() }),
  };
}

Deno.test("StreamDecoder drops BOS and strips the dummy-prefix space once, across a split character", () => {
  const te = new TextEncoder();
  const zhong = te.encode(" 中"); // 0x20 0xE4 0xB8 0xAD
  const tok = fakeTokenizer([
    new Uint8Array(), // 0 BOS
    new Uint8Array(), // 1 EOS
    zhong.subarray(0, 2), // 2: " " + first byte of 中
    zhong.subarray(2), // 3: rest of 中
    te.encode(" again"), // 4
    zhong.subarray(1, 2), // 5: first byte of 中 alone
    zhong, // 6: " 中" whole
  ]);
  const d = new StreamDecoder(tok);
  assert.equal(d.push(0), "");
  assert.equal(d.push(2), ""); // the dummy-prefix space is dropped, the 0xE4 is held
  assert.equal(d.push(3), "中");
  assert.equal(d.push(4), " again"); // later spaces stay
  assert.equal(d.push(6), " 中");
  assert.equal(d.flush(), "");
  assert.throws(() => d.push(99), RangeError);
  // Nothing to strip when the first text has no leading space.
  const e = new StreamDecoder(tok);
  assert.equal(e.push(5), "");
  assert.equal(e.push(3), "中");
  assert.equal(e.push(4), " again");
  // A whole first piece loses only its one leading space.
  const f = new StreamDecoder(tok);
  assert.equal(f.push(0), "");
  assert.equal(f.push(6), "中");
  assert.equal(f.push(6), " 中");
});
