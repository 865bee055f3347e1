/**
 * GGUF → canonical checkpoint (formats/gguf/checkpoint.ts) against independent peers: logits
 * of Hugging Face `transformers` models converted like convert_hf_to_gguf.py, the real
 * stories260K.gguf against stories260K.bin, and hand-built files for every rejection.
 */
import assert from "node:assert/strict";
import { FormatError, GollmError } from "../../core/errors.ts";
import { ggufNameOf, ggufToCheckpoint, loadGguf } from "./checkpoint.ts";
import { parseGguf, readGguf } from "./parse.ts";
import { loadLlama2c } from "../llama2c.ts";
import { ggmlType } from "../quant.ts";
import { createReference } from "../../runtime/reference.ts";
import { ASSETS, haveFiles, ROOT } from "../../tests/assets.ts";
import { assertClose } from "../../tests/assert_close.ts";
import { type BuilderTensor, buildGguf, f32Bytes, v } from "../../tests/gguf_builder.ts";

const FIX = `${ROOT}tests/fixtures/gguf`;
const STORIES = `${ASSETS}/stories260K`;

const haveStories = haveFiles("stories260K GGUF tests", [
  `${STORIES}/stories260K.gguf`,
  `${STORIES}/stories260K.bin`,
]);

const isFormatError = (file: string, re: RegExp) => (e: unknown) =>
  e instanceof FormatError && e.message.startsWith(`${file}: `) && re.test(e.message);

Deno.test("loadGguf() matches Hugging Face transformers logits for llama (permuted Q/K), qwen2, gpt2", async () => {
  const fx = JSON.parse(await Deno.readTextFile(`${FIX}/hf_logits.json`)) as Record<
    string,
    number[]
  >;
  const expect: Record<string, Partial<Record<string, unknown>>> = {
    llama: { rope_style: "interleaved", tie_embeddings: false, rope_theta: 500000, n_kv_heads: 2 },
    qwen2: { rope_style: "half", tie_embeddings: true, attn_bias: true, norm_eps: 1e-6 },
    gpt2: { arch: "gpt2", norm: "layernorm", mlp: "gelu", context_length: 32 },
  };
  for (const arch of ["llama", "qwen2", "gpt2"]) {
    const ck = await loadGguf(`${FIX}/${arch}.gguf`);
    assert.equal(ck.format, "gguf");
    for (const [k, val] of Object.entries(expect[arch])) {
      assert.equal(ck.config[k as keyof typeof ck.config], val, `${arch}.${k}`);
    }
    const logits = createReference(ck.config, ck.weights).forwardAll(fx.tokens, 0);
    assertClose(logits, fx[arch], 1e-4, `${arch} logits`);
    if (arch === "llama") {
      // Negative control: the same weights with HF's rotate-half pairing are wrong, so the
      // interleaved mapping is what makes them agree.
      const wrong = createReference({ ...ck.config, rope_style: "half" }, ck.weights)
        .forwardAll(fx.tokens, 0);
      const diff = Math.max(...wrong.map((x, i) => Math.abs(x - fx.llama[i])));
      assert.ok(diff > 1e-2, `rope_style half should differ, max diff ${diff}`);
    }
  }
});

Deno.test({
  name: "loadGguf() reads stories260K.gguf: metadata, and weights equal to stories260K.bin",
  ignore: !haveStories,
  fn: async () => {
    const g = await readGguf(`${STORIES}/stories260K.gguf`);
    // Values as the gguf Python package reports them for this file.
    assert.equal(g.version, 3);
    assert.equal(g.metadata.size, 19);
    assert.equal(g.tensors.length, 48);
    assert.equal(g.metadata.get("llama.context_length"), 2048);
    assert.equal(g.metadata.get("llama.rope.dimension_count"), 8);
    assert.equal(g.metadata.get("llama.attention.layer_norm_rms_epsilon"), 1e-5);
    assert.equal(g.metadata.get("tokenizer.ggml.seperator_token_id"), 4294967295);
    assert.equal((g.metadata.get("tokenizer.ggml.tokens") as string[]).length, 512);
    const embd = g.tensors.find((t) => t.name === "token_embd.weight")!;
    assert.deepEqual([embd.ne, embd.type.name, embd.offset], [[64, 512], "F32", 0]);
    assert.equal(g.tensors[3].name, "blk.0.attn_q.weight");
    assert.equal(g.tensors[3].fileOffset, 276576); // gguf-py data_offset (absolute)

    const gg = await loadGguf(`${STORIES}/stories260K.gguf`);
    const bin = await loadLlama2c(`${STORIES}/stories260K.bin`);
    const { context_length: _a, tie_embeddings: _b, ...rest } = gg.config;
    const { context_length: _c, tie_embeddings: _d, ...restBin } = bin.config;
    assert.deepEqual(rest, restBin);
    for (const [name, t] of bin.weights) {
      const u = gg.weights.get(name)!;
      assert.deepEqual(u.shape, t.shape, name);
      assertClose(u.data, t.data, 0, name); // unpermuted, bit-identical
    }
    // The GGUF stores the classifier separately; it equals the embedding.
    assertClose(
      gg.weights.get("output.weight")!.data,
      bin.weights.get("tok_embeddings.weight")!.data,
      0,
    );
    // Same tokenizer either way.
    const text = 'Once upon a time, Lily saw a big red ball. "Wow!" she said.\nThe end. 🦙';
    assert.deepEqual(gg.tokenizer!.encode(text), bin.tokenizer!.encode(text));
    assert.equal(gg.tokenizer!.bosId, 1);
    assert.deepEqual(gg.tokenizer!.eosIds, [2]);
  },
});
/** A tiny valid llama GGUF (1 layer, dim 32) for the bad-input tests. */
function tinyLlama(
  opts: { drop?: string; typeOf?: Record<string, number>; arch?: string; version?: number } = {},
) {
  const arch = opts.arch ?? "llama";
  const dim = 32, hidden = 64, vocab = 32;
  const t = (name: string, ne: number[]): BuilderTensor => {
    const n = ne.reduce((a, b) => a * b, 1);
    const type = opts.typeOf?.[name] ?? 0;
    const info = ggmlType(type)!;
    const data = type === 0
      ? f32Bytes(Array.from({ length: n }, (_, i) => Math.sin(i)))
      : new Uint8Array((n / info.blockSize) * info.blockBytes);
    return { name, ne, type, data };
  };
  const tensors = [
    t("token_embd.weight", [dim, vocab]),
    t("blk.0.attn_norm.weight", [dim]),
    t("blk.0.attn_q.weight", [dim, dim]),
    t("blk.0.attn_k.weight", [dim, dim]),
    t("blk.0.attn_v.weight", [dim, dim]),
    t("blk.0.attn_output.weight", [dim, dim]),
    t("blk.0.ffn_norm.weight", [dim]),
    t("blk.0.ffn_gate.weight", [dim, hidden]),
    t("blk.0.ffn_up.weight", [dim, hidden]),
    t("blk.0.ffn_down.weight", [hidden, dim]),
    t("output_norm.weight", [dim]),
  ].filter((x) => x.name !== opts.drop);
  return buildGguf(
    [
      ["general.architecture", v.str(arch)],
      [`${arch}.embedding_length`, v.u32(dim)],
      [`${arch}.block_count`, v.u32(1)],
      [`${arch}.feed_forward_length`, v.u32(hidden)],
      [`${arch}.attention.head_count`, v.u32(2)],
      [`${arch}.context_length`, v.u32(16)],
      [`${arch}.attention.layer_norm_rms_epsilon`, v.f32(1e-5)],
    ],
    tensors,
    { version: opts.version },
  );
}

Deno.test("ggufToCheckpoint() loads a hand-built v2 and v3 llama GGUF with F16/BF16/Q8_0/Q4_0 tensors", () => {
  for (const version of [2, 3]) {
    const ck = ggufToCheckpoint(parseGguf(tinyLlama({ version }), "tiny.gguf"));
    assert.equal(ck.config.tie_embeddings, true);
    assert.equal(ck.tokenizer, null);
    assert.equal(ck.weights.get("layers.0.ffn.w1.weight")!.shape.join(), "64,32");
  }
  const ck = ggufToCheckpoint(parseGguf(
    tinyLlama({
      typeOf: {
        "blk.0.attn_q.weight": 8,
        "blk.0.ffn_up.weight": 2,
        "blk.0.attn_k.weight": 1,
        "blk.0.attn_v.weight": 30,
      },
    }),
    "tiny.gguf",
  ));
  assert.equal(ck.weights.get("layers.0.attn.wq.weight")!.data.every((x) => x === 0), true);
  assert.equal(ggufNameOf("llama", "layers.0.ffn.w3.weight"), "blk.0.ffn_up.weight");
});

Deno.test("parseGguf()/ggufToCheckpoint() reject bad input with a FormatError naming the file", () => {
  const good = tinyLlama();
  // Wrong magic.
  const magic = good.slice();
  magic.set([0x47, 0x47, 0x4d, 0x4c]);
  assert.throws(
    () => parseGguf(magic, "m.gguf"),
    isFormatError("m.gguf", /bad magic: expected 'GGUF', got 'GGML'/),
  );
  // Truncated header, at many cut points (inside counts, keys, values, tensor infos).
  let dataStart = 0;
  try {
    dataStart = parseGguf(good, "x").dataOffset;
  } catch { /* asserted below */ }
  for (let cut = 0; cut < dataStart; cut += 7) {
    assert.throws(
      () => parseGguf(good.subarray(0, cut), "cut.gguf"),
      isFormatError("cut.gguf", /truncated/),
      `cut at ${cut}`,
    );
  }
  // Truncated tensor data.
  assert.throws(
    () => parseGguf(good.subarray(0, good.length - 4), "short.gguf"),
    isFormatError("short.gguf", /truncated: tensor 'output_norm.weight'.*file has/),
  );
  // Unsupported version / big-endian.
  const v1 = good.slice();
  new DataView(v1.buffer).setUint32(4, 1, true);
  assert.throws(
    () => parseGguf(v1, "v1.gguf"),
    isFormatError("v1.gguf", /unsupported GGUF version 1/),
  );
  const be = good.slice();
  new DataView(be.buffer).setUint32(4, 3, false);
  assert.throws(() => parseGguf(be, "be.gguf"), isFormatError("be.gguf", /big-endian/));
  // Unsupported tensor type (Q4_K = 12), named with the tensor.
  const q4k = tinyLlama({ typeOf: { "blk.0.ffn_down.weight": 12 } });
  // ffn_down ne[0] = 64 is not a multiple of Q4_K's 256-element blocks.
  assert.throws(
    () => parseGguf(q4k, "q4k.gguf"),
    isFormatError(
      "q4k.gguf",
      /tensor 'blk.0.ffn_down.weight': ne\[0\] = 64 is not a multiple of the Q4_K block size 256/,
    ),
  );
  const iq4 = tinyLlama({ typeOf: { "blk.0.ffn_down.weight": 20 } }); // IQ4_NL, 32-blocks
  assert.throws(
    () => ggufToCheckpoint(parseGguf(iq4, "iq4.gguf")),
    isFormatError(
      "iq4.gguf",
      /tensor 'blk.0.ffn_down.weight' has type IQ4_NL \(id 20\), which is not supported/,
    ),
  );
  // Missing tensor, named by its GGUF name.
  assert.throws(
    () => ggufToCheckpoint(parseGguf(tinyLlama({ drop: "blk.0.attn_k.weight" }), "miss.gguf")),
    isFormatError("miss.gguf", /tensor 'blk.0.attn_k.weight' is missing/),
  );
  // Unsupported architecture.
  assert.throws(
    () => ggufToCheckpoint(parseGguf(tinyLlama({ arch: "falcon" }), "falcon.gguf")),
    isFormatError("falcon.gguf", /'general.architecture' = "falcon" is not supported/),
  );
  // Missing metadata key.
  const noCtx = buildGguf([["general.architecture", v.str("llama")]]);
  assert.throws(
    () => ggufToCheckpoint(parseGguf(noCtx, "meta.gguf")),
    isFormatError("meta.gguf", /tensor 'token_embd.weight' is missing/),
  );
  // Unknown metadata value type and duplicate keys.
  const badType = buildGguf([["k", v.u32(7)]]);
  new DataView(badType.buffer).setUint32(24 + 8 + 1, 13, true); // after the key "k"
  assert.throws(
    () => parseGguf(badType, "type.gguf"),
    isFormatError("type.gguf", /metadata 'k': unknown value type 13/),
  );
  const dup = buildGguf([["a", v.u32(1)], ["a", v.u32(2)]]);
  assert.throws(() => parseGguf(dup, "dup.gguf"), isFormatError("dup.gguf", /'a' appears twice/));
  // Huge counts cannot allocate: an array claiming 2^40 elements is caught up front.
  const huge = buildGguf([["arr", v.i32s([1, 2])]]);
  const dv = new DataView(huge.buffer);
  const at = 24 + 8 + 3 + 4 + 4; // header, key length + "arr", value type, element type
  dv.setBigUint64(at, 2n ** 40n, true);
  assert.throws(
    () => parseGguf(huge, "huge.gguf"),
    isFormatError("huge.gguf", /corrupt or truncated: .*but the file has \d+/),
  );
  // Every error is a GollmError (the CLI prints it without a stack).
  assert.ok(new FormatError("f", "x") instanceof GollmError);
});

Deno.test("ggufToCheckpoint({ stored }) keeps block tensors as views on the file's bytes", () => {
  const bytes = tinyLlama({ typeOf: { "blk.0.ffn_down.weight": 8, "blk.0.attn_q.weight": 1 } });
  const g = parseGguf(bytes, "q.gguf");
  const ck = ggufToCheckpoint(g, { stored: true });
  const down = ck.weights.get("layers.0.ffn.w2.weight")!; // Q8_0 (32, 64): 2 blocks per row
  assert.equal(down.type?.name, "Q8_0");
  assert.deepEqual(down.shape, [32, 64]);
  assert.equal(down.bytes!.buffer, bytes.buffer, "a view, not a copy");
  assert.equal(down.bytes!.length, 32 * 2 * 34);
  assert.equal(ck.weights.get("layers.0.attn.wq.weight")!.type?.name, "F16");
  assert.equal(ck.weights.get("norm.weight")!.type, undefined); // F32 stays values
  // Without `stored` the same file loads F32, as before.
  const f32 = ggufToCheckpoint(parseGguf(bytes, "q.gguf"));
  assert.equal(f32.weights.get("layers.0.ffn.w2.weight")!.data!.length, 32 * 64);
});

Deno.test("ggufToCheckpoint({ stored }) names the file and tensor of a NaN/Inf scale or an unknown type", () => {
  const bytes = tinyLlama({ typeOf: { "blk.0.ffn_down.weight": 8 } });
  const g = parseGguf(bytes, "nan.gguf");
  const info = g.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!;
  bytes[info.fileOffset + 34 * 3 + 1] = 0x7e; // block 3's scale d: f16 0x7e00 = NaN
  assert.throws(
    () => ggufToCheckpoint(parseGguf(bytes, "nan.gguf"), { stored: true }),
    isFormatError(
      "nan.gguf",
      /tensor 'blk.0.ffn_down.weight' block 3 has a non-finite scale d \(NaN\)/,
    ),
  );
  bytes[info.fileOffset + 34 * 3 + 1] = 0x7c; // d = +Inf
  assert.throws(
    () => ggufToCheckpoint(parseGguf(bytes, "inf.gguf"), { stored: true }),
    isFormatError("inf.gguf", /block 3 has a non-finite scale d \(Infinity\)/),
  );
  const iq = tinyLlama({ typeOf: { "blk.0.attn_v.weight": 20 } }); // IQ4_NL: blocks of 32
  assert.throws(
    () => ggufToCheckpoint(parseGguf(iq, "iq.gguf"), { stored: true }),
    isFormatError(
      "iq.gguf",
      /tensor 'blk.0.attn_v.weight' has type IQ4_NL \(id 20\), which is not supported/,
    ),
  );
});
