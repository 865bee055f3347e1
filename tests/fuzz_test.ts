/**
 * Fuzz-style robustness: flipped and truncated bytes of a real GGUF (stories260K.gguf), a
 * llama2.c checkpoint and tokenizer, and safetensors files must either load or fail with a
 * GollmError (FormatError / ConfigError) — never another exception type, never a hang.
 * Seeded, so a failure reproduces; the whole file runs in a few seconds. The slowest load is
 * printed, not asserted (speed is measured by benchmarks, never by timed assertions).
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { ggufToCheckpoint } from "../formats/gguf/checkpoint.ts";
import { parseGguf } from "../formats/gguf/parse.ts";
import { parseLlama2c } from "../formats/llama2c.ts";
import { parseSafetensors, writeSafetensors } from "../formats/safetensors.ts";
import { parseLlama2cTokenizer } from "../tokenizers/sentencepiece.ts";
import type { Tensor } from "../core/weights.ts";
import { ASSETS, haveFiles, isFile, ROOT } from "./assets.ts";

const DIR = `${ASSETS}/stories260K`;

const haveGguf = haveFiles("GGUF fuzzing", [`${DIR}/stories260K.gguf`]);
const haveBin = haveFiles("llama2.c fuzzing", [`${DIR}/stories260K.bin`, `${DIR}/tok512.bin`]);

/** xorshift32: deterministic across machines. */
function rng(seed: number): (n: number) => number {
  let s = seed | 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

/**
 * Mutates `original` `rounds` times (byte flips concentrated in the first `hot` bytes, where
 * headers live, plus truncations) and runs `load` on each; returns how many loaded.
 */
function fuzz(
  original: Uint8Array,
  hot: number,
  rounds: number,
  seed: number,
  load: (b: Uint8Array) => unknown,
): { ok: number; failed: number; worstMs: number } {
  const r = rng(seed);
  let ok = 0, failed = 0, worstMs = 0;
  for (let i = 0; i < rounds; i++) {
    let bytes: Uint8Array;
    const kind = r(4);
    if (kind === 0) {
      bytes = original.subarray(0, r(original.length)); // truncate anywhere
    } else if (kind === 1) {
      bytes = original.subarray(0, r(Math.min(hot, original.length))); // truncate in the header
    } else {
      bytes = original.slice();
      const flips = 1 + r(kind === 2 ? 2 : 12);
      for (let f = 0; f < flips; f++) {
        const at = r(4) === 0 ? r(bytes.length) : r(Math.min(hot, bytes.length));
        bytes[at] = r(3) === 0 ? 0xff : bytes[at] ^ (1 << r(8));
      }
    }
    const t0 = performance.now();
    try {
      load(bytes);
      ok++;
    } catch (e) {
      if (!(e instanceof GollmError)) {
        throw new Error(`seed ${seed} round ${i} (kind ${kind}): ${String(e)}`, { cause: e });
      }
      assert.ok(
        e.message.length > 0 && !e.message.includes("\n"),
        `one-line message: ${e.message}`,
      );
      failed++;
    }
    worstMs = Math.max(worstMs, performance.now() - t0);
  }
  return { ok, failed, worstMs };
}

Deno.test({
  name: "parseGguf()/ggufToCheckpoint() fail only with GollmError on mutated stories260K.gguf",
  ignore: !haveGguf,
  fn: async () => {
    const original = await Deno.readFile(`${DIR}/stories260K.gguf`);
    const hot = parseGguf(original, "x").dataOffset;
    const res = fuzz(original, hot, 1500, 260, (b) => {
      const ck = ggufToCheckpoint(parseGguf(b, "fuzz.gguf"));
      ck.tokenizer?.decode(ck.tokenizer.encode("Once upon a time, 🦙"));
    });
    console.log(
      `gguf: ${res.ok} loaded, ${res.failed} FormatError/ConfigError, worst ${
        res.worstMs.toFixed(0)
      } ms`,
    );
    assert.ok(res.failed > 800, "most mutations should be caught");
  },
});

Deno.test({
  name: "parseLlama2c()/parseLlama2cTokenizer() fail only with GollmError on mutated files",
  ignore: !haveBin,
  fn: async () => {
    const bin = await Deno.readFile(`${DIR}/stories260K.bin`);
    const r1 = fuzz(bin, 28, 150, 7, (b) => parseLlama2c(b, "fuzz.bin"));
    const tok = await Deno.readFile(`${DIR}/tok512.bin`);
    const r2 = fuzz(tok, tok.length, 400, 8, (b) => {
      const t = parseLlama2cTokenizer(b, "fuzz_tok.bin");
      t.decode(t.encode("Once upon a time"));
    });
    console.log(
      `llama2c: ${r1.ok}/${r1.failed}, tokenizer: ${r2.ok}/${r2.failed} (loaded/rejected)`,
    );
    assert.ok(r1.failed > 50 && r2.failed > 50);
  },
});

Deno.test("parseSafetensors() fails only with GollmError on mutated safetensors files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tensors = new Map<string, Tensor>();
    const vals = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 3);
    tensors.set("tok_embeddings.weight", { shape: [32, 16], data: vals(512) });
    tensors.set("layers.0.attn.wq.weight", { shape: [16, 16], data: vals(256) });
    tensors.set("norm.weight", { shape: [16], data: vals(16) });
    const files: string[] = [];
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const p = `${dir}/m_${dtype}.safetensors`;
      await writeSafetensors(p, tensors, { dtype, metadata: { format: "gollm", note: "fuzz" } });
      files.push(p);
    }
    // Also a file written by Python's safetensors, when the HF fixtures are present.
    for (const name of ["mistral", "qwen2", "gpt2", "llama_untied"]) {
      const p = `${ROOT}tests/fixtures/hf/${name}/model.safetensors`;
      if (isFile(p)) {
        files.push(p);
        break;
      }
    }
    let seed = 100;
    for (const p of files) {
      const original = await Deno.readFile(p);
      const hot = 8 + Number(new DataView(original.buffer).getBigUint64(0, true));
      const res = fuzz(original, hot, 300, seed++, (b) => parseSafetensors(b, "fuzz.safetensors"));
      console.log(`${p.split("/").pop()}: ${res.ok} loaded, ${res.failed} rejected`);
      assert.ok(res.failed > 100);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
