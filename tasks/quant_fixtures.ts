/**
 * `deno task fixtures:quant`: regenerates tests/fixtures/quant/.
 *
 * 1. `python/quant_fixtures.py` writes gguf_py/: dequantisation of random blocks of every type
 *    the `gguf` package decodes, and its quantisation where it has one (legacy types, F16,
 *    BF16).
 * 2. llama/: llama.cpp's own `quantize_row_*_ref` (what `llama-quantize` runs without an
 *    importance matrix) on deterministic inputs, for every block type including the K-quants,
 *    called through FFI in the `libggml-base.so` of npm `@node-llama-cpp/linux-x64` (installed
 *    on first use into `~/.cache/gollm/llama-ggml` with `npm install --ignore-scripts`; no
 *    build, no other download).
 *
 * File layout of llama/<type>.quant.bin: the F32 input, then the blocks; for q8_K, then also
 * llama.cpp's F32 dequantisation of those blocks.
 *
 * @module
 */
import { fail, ROOT, runPython } from "./python.ts";
import {
  libggmlPath,
  LLAMA_GGML_PACKAGE,
  LLAMA_QUANT_TYPES,
  llamaGgmlCacheDir,
  openLlamaGgml,
  openLlamaQuantize,
  quantTestInput,
} from "../tests/llama_ggml.ts";
import { MIX_MODELS, sha256, writeMixModel } from "../tests/quant_models.ts";
import { ggmlTypeByName, rowBytes } from "../formats/quant.ts";
import { FILE_TYPES } from "../formats/quant/mix.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { parseGguf } from "../formats/gguf/parse.ts";

async function ensureLibggml(): Promise<void> {
  try {
    Deno.statSync(libggmlPath());
    return;
  } catch {
    // install below
  }
  const dir = llamaGgmlCacheDir();
  await Deno.mkdir(dir, { recursive: true });
  console.log(`installing ${LLAMA_GGML_PACKAGE} into ${dir}`);
  const out = await new Deno.Command("npm", {
    args: ["install", "--prefix", dir, "--ignore-scripts", "--no-save", LLAMA_GGML_PACKAGE],
    stdout: "inherit",
    stderr: "inherit",
  }).output().catch((e) => fail(`npm could not run: ${(e as Error).message}`));
  if (!out.success) fail(`npm install ${LLAMA_GGML_PACKAGE} failed`);
}

async function llamaFixtures(): Promise<void> {
  await ensureLibggml();
  const ggml = openLlamaGgml("llama fixtures");
  if (!ggml) fail(`${libggmlPath()} is missing after the install`);
  const dir = `${ROOT}tests/fixtures/quant/llama`;
  await Deno.mkdir(dir, { recursive: true });
  const files = [];
  for (const [i, name] of LLAMA_QUANT_TYPES.entries()) {
    const type = ggmlTypeByName(name)!;
    const nBlocks = type.blockSize === 256 ? 8 : 32;
    const x = quantTestInput(type.blockSize, nBlocks, 1000 + i);
    const blocks = ggml.quantize(name, x, rowBytes(type, x.length));
    const parts = [new Uint8Array(x.buffer), blocks];
    if (name === "q8_K") parts.push(new Uint8Array(ggml.dequantize(name, blocks, x.length).buffer));
    const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) bytes.set(p, (o += p.length) - p.length);
    await Deno.writeFile(`${dir}/${type.name}.quant.bin`, bytes);
    files.push({ file: `${type.name}.quant.bin`, type: type.name, n: x.length, seed: 1000 + i });
  }
  ggml.close();
  const manifest = {
    source: `quantize_row_*_ref in libggml-base.so of npm ${LLAMA_GGML_PACKAGE}`,
    layout: "F32 input, then blocks (Q8_K: then F32 dequantize_row_q8_K of the blocks)",
    files,
  };
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest, null, 1) + "\n");
  console.log(`wrote ${files.length} llama.cpp fixtures to tests/fixtures/quant/llama`);
}

/**
 * llama_mix.json: for each test model (tests/quant_models.ts) and file type, the type and
 * SHA-256 of every tensor `llama_model_quantize` writes from the model's F32 GGUF, and the
 * scalar metadata of its output.
 */
async function llamaMixFixture(): Promise<void> {
  const quantizeFile = openLlamaQuantize("llama mix fixture");
  if (!quantizeFile) fail("libllama is missing after the install");
  const tmp = await Deno.makeTempDir({ prefix: "gollm-mix-" });
  const models: Record<string, Record<string, unknown>> = {};
  try {
    for (const spec of MIX_MODELS) {
      const dir = `${tmp}/${spec.name}`;
      await writeMixModel(spec, dir);
      const source = `${tmp}/${spec.name}.source.gguf`;
      await quantizeModel(dir, source, "f32", { name: spec.name });
      const perType: Record<string, unknown> = {};
      for (const ft of FILE_TYPES) {
        const out = `${tmp}/${spec.name}.${ft.name}.gguf`;
        if (quantizeFile(source, out, ft.id) !== 0) fail(`llama_model_quantize ${ft.name} failed`);
        const g = parseGguf(await Deno.readFile(out), out);
        const tensors: Record<string, [string, string]> = {};
        for (const t of g.tensors) {
          const data = g.bytes.subarray(t.fileOffset, t.fileOffset + t.nbytes);
          tensors[t.name] = [t.type.name, (await sha256(data)).slice(0, 16)];
        }
        const metadata: Record<string, unknown> = {};
        for (const [k, v] of g.metadata) if (!Array.isArray(v)) metadata[k] = v;
        perType[ft.name] = { tensors, metadata };
      }
      models[spec.name] = perType;
      console.log(`llama_model_quantize: ${spec.name} in ${FILE_TYPES.length} file types`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  const fixture = {
    source: `llama_model_quantize in libllama of npm ${LLAMA_GGML_PACKAGE}, one thread, ` +
      "default parameters, from the F32 GGUF of each tests/quant_models.ts model",
    models,
  };
  await Deno.writeTextFile(
    `${ROOT}tests/fixtures/quant/llama_mix.json`,
    JSON.stringify(fixture, null, 1) + "\n",
  );
}

if (import.meta.main) {
  const code = await runPython("quant_fixtures.py", [], ["numpy", "gguf"]);
  if (code !== 0) Deno.exit(code);
  await llamaFixtures();
  await llamaMixFixture();
}
