/**
 * quantizeModel (formats/quantize.ts, formats/quant/mix.ts, formats/gguf/write.ts) against
 * llama.cpp's own `llama_model_quantize` (tests/fixtures/quant/llama_mix.json, made by
 * `deno task fixtures:quant`), gguf-py's GGUFReader, and gollm's own reader and tokenizers.
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { loadCheckpoint } from "./load.ts";
import { loadGguf } from "./gguf/checkpoint.ts";
import { parseGguf } from "./gguf/parse.ts";
import { dequantize, quantize } from "./quant.ts";
import { FILE_TYPES, fileType } from "./quant/mix.ts";
import { quantizeModel } from "./quantize.ts";
import { ASSETS, haveFiles, ROOT } from "../tests/assets.ts";
import { MIX_MODELS, sha256, writeMixModel } from "../tests/quant_models.ts";
import { openLlamaLoader } from "../tests/llama_ggml.ts";
import { pythonSkipReason } from "../tests/python_probe.ts";

interface MixEntry {
  tensors: Record<string, [string, string]>;
  metadata: Record<string, unknown>;
}
const MIX: Record<string, Record<string, MixEntry>> = JSON.parse(
  Deno.readTextFileSync(`${ROOT}tests/fixtures/quant/llama_mix.json`),
).models;

/** Per-tensor `TYPE sha256[0:16]` and scalar metadata of a GGUF file. */
async function summarize(path: string): Promise<MixEntry> {
  const g = parseGguf(await Deno.readFile(path), path);
  const tensors: Record<string, [string, string]> = {};
  for (const t of g.tensors) {
    const data = g.bytes.subarray(t.fileOffset, t.fileOffset + t.nbytes);
    tensors[t.name] = [t.type.name, (await sha256(data)).slice(0, 16)];
  }
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of g.metadata) if (!Array.isArray(v)) metadata[k] = v;
  return { tensors, metadata };
}

/** Names of tensors whose type or bytes differ, plus metadata keys that differ. */
function differences(got: MixEntry, want: MixEntry): string[] {
  const out: string[] = [];
  const names = new Set([...Object.keys(got.tensors), ...Object.keys(want.tensors)]);
  for (const n of names) {
    const a = got.tensors[n], b = want.tensors[n];
    if (!a || !b || a[0] !== b[0] || a[1] !== b[1]) {
      out.push(`${n}: ${a?.join(" ") ?? "missing"} vs llama.cpp ${b?.join(" ") ?? "missing"}`);
    }
  }
  const keys = new Set([...Object.keys(got.metadata), ...Object.keys(want.metadata)]);
  for (const k of keys) {
    if (got.metadata[k] !== want.metadata[k]) {
      out.push(`metadata ${k}: ${got.metadata[k]} vs llama.cpp ${want.metadata[k]}`);
    }
  }
  return out;
}

const tmp = await Deno.makeTempDir({ prefix: "gollm-quantize-test-" });
const dirs = new Map<string, string>();
for (const spec of MIX_MODELS) {
  dirs.set(spec.name, `${tmp}/${spec.name}`);
  await writeMixModel(spec, `${tmp}/${spec.name}`);
}

Deno.test("quantizeModel() writes what llama.cpp's llama_model_quantize writes, tensor for tensor", async () => {
  let files = 0;
  for (const spec of MIX_MODELS) {
    assert.deepStrictEqual(Object.keys(MIX[spec.name]), FILE_TYPES.map((f) => f.name));
    for (const ft of FILE_TYPES) {
      const out = `${tmp}/${spec.name}.${ft.name}.gguf`;
      await quantizeModel(dirs.get(spec.name)!, out, ft.name, { name: spec.name });
      const diff = differences(await summarize(out), MIX[spec.name][ft.name]);
      assert.deepStrictEqual(diff, [], `${spec.name} ${ft.name}`);
      if (ft.name !== "q4_k_m") await Deno.remove(out);
      files++;
    }
  }
  assert.equal(files, 3 * 17);
});

Deno.test("negative control: another mix or one changed block is reported as a difference", async () => {
  const out = `${tmp}/llama_gqa_untied.q4_k_m.gguf`;
  const mine = await summarize(out);
  const other = differences(mine, MIX.llama_gqa_untied.q5_k_m);
  assert.ok(other.some((d) => d.startsWith("blk.0.attn_q.weight: Q4_K")), other.join("\n"));
  // Flip one quant byte of one tensor: exactly that tensor differs.
  const bytes = await Deno.readFile(out);
  const g = parseGguf(bytes, out);
  const t = g.tensors.find((x) => x.name === "blk.5.ffn_up.weight")!;
  bytes[t.fileOffset + 40] ^= 0x10;
  const flipped = `${tmp}/flipped.gguf`;
  await Deno.writeFile(flipped, bytes);
  const diff = differences(await summarize(flipped), MIX.llama_gqa_untied.q4_k_m);
  assert.deepStrictEqual(diff.map((d) => d.split(":")[0]), ["blk.5.ffn_up.weight"]);
});

Deno.test("quantizeModel() output loads back in gollm with the weights the blocks hold", async () => {
  const out = `${tmp}/llama_gqa_untied.q4_k_m.gguf`;
  const src = await loadCheckpoint(dirs.get("llama_gqa_untied")!);
  const back = await loadGguf(out);
  assert.deepStrictEqual(back.config, { ...src.config, tokenizer: "none" });
  const g = parseGguf(await Deno.readFile(out), out);
  const info = g.tensors.find((t) => t.name === "blk.3.ffn_down.weight")!;
  assert.equal(info.type.name, "Q6_K");
  const w = src.weights.get("layers.3.ffn.w2.weight")!;
  const want = dequantize(info.type, quantize(info.type, w.data), w.data.length);
  assert.deepStrictEqual(back.weights.get("layers.3.ffn.w2.weight")!.data, want);
});

const pyWhy = await pythonSkipReason("gguf, numpy");
Deno.test({
  name: "quantizeModel() output reads in gguf-py's GGUFReader with the same tensors and values",
  ignore: pyWhy !== null,
  async fn() {
    const out = `${tmp}/llama_gqa_untied.q4_k_m.gguf`;
    const script = `
import sys, json, numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
r = GGUFReader(sys.argv[1])
out = {}
for t in r.tensors:
    v = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
    out[t.name] = [t.tensor_type.name, [int(x) for x in t.shape], float(v.sum()), float(v[:4].tolist()[0])]
meta = {f.name: (f.contents() if not f.types or f.types[0].name != "ARRAY" else None) for f in r.fields.values()}
print(json.dumps({"tensors": out, "arch": meta.get("general.architecture"), "blocks": meta.get("llama.block_count")}))
`;
    const r = await new Deno.Command("python3", { args: ["-c", script, out] }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    const py = JSON.parse(new TextDecoder().decode(r.stdout));
    assert.equal(py.arch, "llama");
    assert.equal(py.blocks, 8);
    const g = parseGguf(await Deno.readFile(out), out);
    assert.equal(Object.keys(py.tensors).length, g.tensors.length);
    for (const t of g.tensors) {
      const [type, shape, sum, first] = py.tensors[t.name];
      assert.equal(type, t.type.name, t.name);
      assert.deepStrictEqual(shape, t.ne, t.name);
      const n = t.ne.reduce((a, b) => a * b, 1);
      const mine = dequantize(t.type, g.bytes.subarray(t.fileOffset, t.fileOffset + t.nbytes), n);
      assert.equal(first, mine[0], t.name);
      const s = mine.reduce((a, b) => a + b, 0);
      assert.ok(
        Math.abs(s - sum) <= 1e-6 * (1 + Math.abs(sum)) + 1e-9 * n,
        `${t.name}: ${s} vs ${sum}`,
      );
    }
  },
});

Deno.test("quantizeModel() embeds a tiktoken tokenizer (with merges) that encodes as before", async () => {
  const out = `${tmp}/default.q8_0.gguf`;
  const r = await quantizeModel(`${ROOT}models/default`, out, "q8_0");
  assert.equal(r.arch, "llama");
  const src = await loadCheckpoint(`${ROOT}models/default`);
  const back = await loadGguf(out);
  const text = 'Once upon a time, a little fox said: "Hello, world!" 123 times.\n';
  assert.deepStrictEqual(back.tokenizer!.encode(text), src.tokenizer!.encode(text));
  const g = parseGguf(await Deno.readFile(out), out);
  const merges = g.metadata.get("tokenizer.ggml.merges") as string[];
  assert.ok(merges.length > 3000, `${merges.length} merges`);
  assert.equal(g.metadata.get("tokenizer.ggml.pre"), "gpt-2");
  await Deno.remove(out);
});

const stories = `${ASSETS}/stories260K/stories260K.gguf`;
Deno.test({
  name: "quantizeModel() keeps a SentencePiece tokenizer and the model of a real GGUF",
  ignore: !haveFiles("stories260K re-quantisation", [stories]),
  async fn() {
    // Q8_0 has no fallback for ffn_down's 172-wide rows (llama-quantize refuses it too).
    await assert.rejects(
      () => quantizeModel(stories, `${tmp}/stories.q8_0.gguf`, "q8_0"),
      /'blk.0.ffn_down.weight': row length 172 is not a multiple of the Q8_0 block size 32/,
    );
    const out = `${tmp}/stories.q4_k_m.gguf`;
    const r = await quantizeModel(stories, out, "Q4_K_M");
    const types = Object.fromEntries(r.tensors.map((t) => [t.name, t.type.name]));
    // stories260K.gguf stores output.weight: token_embd keeps Q4_K → Q5_0 (64 columns) and
    // output gets Q6_K → Q8_0.
    assert.equal(types["token_embd.weight"], "Q5_0");
    assert.equal(types["output.weight"], "Q8_0");
    assert.equal(types["blk.0.ffn_down.weight"], "F16"); // Q6_K → Q8_0 → F16 (172 columns)
    assert.equal(types["blk.0.attn_q.weight"], "Q5_0"); // Q4_K → Q5_0 (64 columns)
    const src = await loadGguf(stories), back = await loadGguf(out);
    assert.deepStrictEqual(back.config, src.config);
    assert.deepStrictEqual(back.tokenizer!.encode("Once upon a time"), [1, 403, 407, 261, 378]);
    assert.deepStrictEqual(
      back.tokenizer!.encode("Lily and Ben played."),
      src.tokenizer!.encode("Lily and Ben played."),
    );
  },
});

const llamaLoad = openLlamaLoader("llama.cpp load check of quantizeModel() files");
Deno.test({
  name:
    "llama.cpp loads quantizeModel() files and tokenizes like gollm (tiktoken and SentencePiece)",
  ignore: llamaLoad === null,
  async fn() {
    const texts = ["Once upon a time, there was a fox.", "  Hello\n\nworld 1234 ünïcode!"];
    const cases: [string, string][] = [[`${ROOT}models/default`, "q4_k_m"]];
    if (haveFiles("llama.cpp load of stories260K", [stories])) cases.push([stories, "q4_k_m"]);
    for (const [src, type] of cases) {
      const out = `${tmp}/llama-load.${type}.gguf`;
      const r = await quantizeModel(src, out, type);
      const model = llamaLoad!(out);
      assert.ok(model, `llama.cpp refused ${src} as ${type}`);
      try {
        const ours = (await loadGguf(out)).tokenizer!;
        assert.equal(model.nTokens, ours.vocabSize);
        assert.equal(model.nParams, r.parameters);
        for (const text of texts) {
          assert.deepStrictEqual(model.tokenize(text, true), ours.encode(text), `${src}: ${text}`);
        }
      } finally {
        model.free();
      }
    }
    // Negative control: llama.cpp refuses a file whose tensor shape contradicts its metadata.
    const bad = `${tmp}/llama-load.bad.gguf`;
    const bytes = await Deno.readFile(`${tmp}/llama-load.q4_k_m.gguf`);
    const g = parseGguf(bytes, bad);
    const at = new TextDecoder("latin1").decode(bytes.subarray(0, g.dataOffset))
      .indexOf("llama.embedding_length");
    new DataView(bytes.buffer).setUint32(at + "llama.embedding_length".length + 4, 7, true);
    await Deno.writeFile(bad, bytes);
    assert.equal(llamaLoad!(bad), null);
  },
});

Deno.test("quantizeModel() rejects an unknown type and leaves nothing behind", async () => {
  await assert.rejects(
    () => quantizeModel(dirs.get("llama_tied_192")!, `${tmp}/x.gguf`, "iq2_xs"),
    (e: unknown) =>
      e instanceof GollmError && /quantisation type 'iq2_xs' is not supported/.test(e.message),
  );
  assert.throws(() => fileType("q9"), GollmError);
  await assert.rejects(() => Deno.stat(`${tmp}/x.gguf`));
  // A NaN weight is refused naming the tensor; no file or temporary is left.
  const dir = `${tmp}/nan_model`;
  await writeMixModel(MIX_MODELS[1], dir);
  const st = await Deno.readFile(`${dir}/model.safetensors`);
  const header = Number(new DataView(st.buffer).getBigUint64(0, true));
  new DataView(st.buffer).setFloat32(8 + header + 4 * 5, NaN, true); // 6th value of the first tensor
  await Deno.writeFile(`${dir}/model.safetensors`, st);
  await assert.rejects(
    () => quantizeModel(dir, `${tmp}/nan.gguf`, "q4_0"),
    (e: unknown) =>
      e instanceof GollmError && /holds NaN at element 5; cannot quantise/.test(e.message),
  );
  assert.deepStrictEqual([...Deno.readDirSync(tmp)].filter((e) => e.name.includes("nan.gguf")), []);
});

Deno.test({
  name: "cleanup",
  fn: () => Deno.remove(tmp, { recursive: true }),
  sanitizeResources: false,
});
