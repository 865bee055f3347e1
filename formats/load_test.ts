/**
 * loadCheckpoint() against bad input that once got through (issues #7 item 7, #12 items 2,
 * 9, 10, 14, 16, 17, 18): every case ends in a one-line GollmError naming the file, in
 * milliseconds, and nothing half-written is left behind. Real files: models/default (gollm
 * directory), tests/fixtures/hf/llama_gqa (written by transformers), stories260K.bin.
 */
import assert from "node:assert/strict";
import { ConfigError, FormatError, GollmError } from "../core/errors.ts";
import {
  detectFormat,
  inspectCheckpoint,
  loadCheckpoint,
  loadCheckpointTokenizer,
} from "./load.ts";
import { loadGollmDir, writeGollmDir } from "./gollm_dir.ts";
import { parseSafetensors } from "./safetensors.ts";
import { ASSETS, haveFiles, ROOT } from "../tests/assets.ts";
import { quantizeModel } from "./quantize.ts";
import { pythonSkipReason } from "../tests/python_probe.ts";

const DEFAULT = `${ROOT}models/default`;
const HF = `${ROOT}tests/fixtures/hf/llama_gqa`;
const STORIES_BIN = `${ASSETS}/stories260K/stories260K.bin`;

// deno-lint-ignore no-explicit-any
type ErrorClass = abstract new (...args: any[]) => GollmError;

/** Asserts a one-line GollmError (of `type`) whose message starts with `file: ` and matches. */
function typedError(type: ErrorClass, file: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.ok(e.message.startsWith(`${file}: `), `names ${file}: ${e.message}`);
    assert.ok(!e.message.includes("\n"), `one line: ${JSON.stringify(e.message)}`);
    assert.match(e.message, re);
    return true;
  };
}

/** Runs `f`, failing (instead of hanging) when it does not settle within `ms`. */
async function within<T>(ms: number, what: string, f: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([f(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A copy of a model directory in a temp dir (symlinking the big files), with edits. */
async function copyDir(src: string, edit: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const e of Deno.readDirSync(src)) {
    if (edit[e.name] !== undefined) await Deno.writeTextFile(`${dir}/${e.name}`, edit[e.name]);
    else await Deno.symlink(`${src}/${e.name}`, `${dir}/${e.name}`);
  }
  for (const [name, text] of Object.entries(edit)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir;
}

function yamlWith(field: string, value: string): string {
  const text = Deno.readTextFileSync(`${DEFAULT}/config.yaml`);
  const re = new RegExp(`^${field}:.*$`, "m");
  return re.test(text) ? text.replace(re, `${field}: ${value}`) : `${text}${field}: ${value}\n`;
}

function jsonWith(file: string, patch: Record<string, unknown>): string {
  return JSON.stringify({ ...JSON.parse(Deno.readTextFileSync(file)), ...patch }, null, 2);
}

Deno.test("loadCheckpoint() refuses a FIFO, /dev/zero and /proc/self/mem without blocking or reading", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = `${dir}/model.bin`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success, "mkfifo");
    await within(5000, "FIFO as --model", () =>
      assert.rejects(
        loadCheckpoint(fifo),
        typedError(FormatError, fifo, /cannot read model file: it is a FIFO, not a regular file/),
      ));
    await within(5000, "FIFO as --tokenizer", () =>
      assert.rejects(
        loadCheckpoint(DEFAULT, { tokenizerPath: fifo }),
        typedError(FormatError, fifo, /cannot read tokenizer file: it is a FIFO/),
      ));
    await assert.rejects(
      loadCheckpoint("/dev/zero"),
      typedError(FormatError, "/dev/zero", /it is a character device, not a regular file/),
    );
    // A /proc file stats as a regular file of size 0: nothing is read from it.
    await assert.rejects(
      loadCheckpoint("/proc/self/mem"),
      typedError(FormatError, "/proc/self/mem", /not a recognised model file \(is empty/),
    );
    // A directory where a tokenizer file is expected, and one with a trailing slash.
    await assert.rejects(
      loadCheckpoint(DEFAULT, { tokenizerPath: dir }),
      typedError(FormatError, dir, /cannot read tokenizer file: it is a directory/),
    );
    assert.equal(await detectFormat(`${DEFAULT}/`), "gollm");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() rejects a config declaring far more layers than the file holds, at once", async () => {
  const cases: [string, Record<string, string>, ErrorClass, string, RegExp][] = [
    [
      DEFAULT,
      { "config.yaml": yamlWith("n_layers", "60000") },
      FormatError,
      "model.safetensors",
      /holds \d+ tensors \(layers 0\.\.\d+\) but the config's n_layers 60000 needs/,
    ],
    [
      DEFAULT,
      { "config.yaml": yamlWith("n_layers", "100000000") },
      ConfigError,
      "config.yaml",
      /field 'n_layers' must be at most 65536 \(2\^16\), got 100000000/,
    ],
    [
      HF,
      { "config.json": jsonWith(`${HF}/config.json`, { num_hidden_layers: 60000 }) },
      FormatError,
      "model.safetensors.index.json",
      /holds 2 layers \(0\.\.1\) but config\.json declares 60000/,
    ],
    [
      HF,
      { "config.json": jsonWith(`${HF}/config.json`, { num_hidden_layers: 2147483648 }) },
      ConfigError,
      "config.json",
      /field 'n_layers' must be at most 65536/,
    ],
  ];
  for (const [src, edit, type, file, re] of cases) {
    const dir = await copyDir(src, edit);
    try {
      const t0 = performance.now();
      await within(
        10_000,
        `${file} ${re}`,
        () => assert.rejects(loadCheckpoint(dir), typedError(type, `${dir}/${file}`, re)),
      );
      console.log(`${file}: rejected in ${(performance.now() - t0).toFixed(0)} ms`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test({
  name: "loadCheckpoint() bounds a llama2.c header's n_layers and seq_len by the file size",
  ignore: !haveFiles("llama2.c header tests", [STORIES_BIN]),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const original = await Deno.readFile(STORIES_BIN);
      for (const [at, value] of [[8, 0x7fffffff], [24, 0x7fffffff], [8, 60000]]) {
        const bytes = original.slice();
        new DataView(bytes.buffer).setInt32(at, value, true);
        const path = `${dir}/m${at}_${value}.bin`;
        await Deno.writeFile(path, bytes);
        await within(5000, path, () =>
          assert.rejects(
            loadCheckpoint(path),
            typedError(GollmError, path, /must be at most|implies \d+ bytes, file has/),
          ));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("loadCheckpoint() refuses an absurd context length and accepts a large one", async () => {
  const cases: [string, Record<string, string>, string][] = [
    [DEFAULT, { "config.yaml": yamlWith("context_length", "2147483648") }, "config.yaml"],
    [
      HF,
      { "config.json": jsonWith(`${HF}/config.json`, { max_position_embeddings: 1e12 }) },
      "config.json",
    ],
  ];
  for (const [src, edit, file] of cases) {
    const dir = await copyDir(src, edit);
    try {
      await assert.rejects(
        loadCheckpoint(dir),
        typedError(
          ConfigError,
          `${dir}/${file}`,
          /context_length' must be at most 2147483647 \(2\^31 - 1\)/,
        ),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  // 2^20 tokens is a number like any other: the reader allocates nothing by it.
  const dir = await copyDir(DEFAULT, { "config.yaml": yamlWith("context_length", "1048576") });
  try {
    assert.equal((await loadCheckpoint(dir)).config.context_length, 1048576);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() reads config.json with a BOM and reports bad JSON on one line", async () => {
  const text = Deno.readTextFileSync(`${HF}/config.json`);
  const bom = await copyDir(HF, { "config.json": "\ufeff" + text });
  const bad = await copyDir(HF, { "config.json": text.replace('"hidden_size"', "hidden_size") });
  try {
    assert.equal((await loadCheckpoint(bom)).format, "hf");
    await assert.rejects(
      loadCheckpoint(bad),
      typedError(FormatError, `${bad}/config.json`, /is not valid JSON: /),
    );
  } finally {
    await Deno.remove(bom, { recursive: true });
    await Deno.remove(bad, { recursive: true });
  }
});

Deno.test("loadCheckpoint() validates generation defaults at load, naming the file and field", async () => {
  const gen = `${HF}/generation_config.json`;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ do_sample: true, temperature: -1 }, /temperature must be a finite number ≥ 0, got -1/],
    [{ do_sample: true, top_p: 0 }, /top_p must be in \(0, 1\], got 0/],
    [{ do_sample: true, top_k: 2.5 }, /top_k must be an integer ≥ 0, got 2.5/],
    [{ top_p: "high" }, /top_p must be in \(0, 1\], got "high"/],
  ];
  for (const [patch, re] of cases) {
    const dir = await copyDir(HF, { "generation_config.json": jsonWith(gen, patch) });
    try {
      await assert.rejects(
        loadCheckpoint(dir),
        typedError(FormatError, `${dir}/generation_config.json`, re),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  // A gollm directory's __metadata__.generation, written by a (tampered) converter.
  const out = await Deno.makeTempDir();
  try {
    const ckpt = await loadGollmDir(DEFAULT);
    ckpt.generation = { temperature: 0.7, top_p: 7 };
    await writeGollmDir(ckpt, `${out}/m`);
    await assert.rejects(
      loadCheckpoint(`${out}/m`),
      typedError(
        FormatError,
        `${out}/m/model.safetensors`,
        /__metadata__\.generation\.top_p must be in \(0, 1\], got 7/,
      ),
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("parseSafetensors() names an unknown dtype that is an Object.prototype key", () => {
  for (const dtype of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    const header = new TextEncoder().encode(
      JSON.stringify({ x: { dtype, shape: [1], data_offsets: [0, 4] } }),
    );
    const bytes = new Uint8Array(8 + header.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    assert.throws(
      () => parseSafetensors(bytes, "m.safetensors"),
      typedError(FormatError, "m.safetensors", new RegExp(`unsupported dtype "${dtype}"`)),
    );
  }
});

Deno.test("writeGollmDir() to an OUT under a file, under /proc, or the current directory fails on one line", async () => {
  const ckpt = await loadGollmDir(DEFAULT);
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    const cases: [string, boolean, RegExp][] = [
      [`${dir}/file/out`, false, /cannot be written: .*not a directory/],
      [`${dir}/file`, true, /already exists and is not a directory/],
      ["/proc/gollm-out", false, /cannot be written: \/proc is a kernel file system/],
      ["/proc/self/gollm-out", true, /cannot be written/],
      [".", true, /refusing to replace the current directory/],
      [dir, true, /refusing to replace the current directory/],
    ];
    Deno.chdir(`${dir}`);
    for (const [out, overwrite, re] of cases) {
      await assert.rejects(writeGollmDir(ckpt, out, { overwrite }), (e: unknown) => {
        assert.ok(e instanceof GollmError, `${out}: ${e}`);
        assert.ok(!e.message.includes("\n") && e.message.startsWith(out), e.message);
        assert.match(e.message, re);
        return true;
      });
    }
    Deno.chdir(cwd);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file"], "nothing left");
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfig() rejects Object.prototype keys as unknown fields", async () => {
  const dir = await copyDir(DEFAULT, { "config.yaml": yamlWith("toString", "5") });
  try {
    await assert.rejects(
      loadCheckpoint(dir),
      typedError(ConfigError, `${dir}/config.yaml`, /field 'toString' is not a known config field/),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() reads a GGUF given as bytes or a Blob as it reads the file", async () => {
  const file = "tests/fixtures/gguf/qwen2.gguf";
  const bytes = await Deno.readFile(file);
  const want = await loadCheckpoint(file);
  for (const source of [bytes, new Blob([bytes])]) {
    const ck = await loadCheckpoint(source);
    assert.equal(ck.format, "gguf");
    assert.deepEqual(ck.config, want.config);
    assert.deepEqual([...ck.weights.keys()], [...want.weights.keys()]);
    for (const [name, t] of want.weights) assert.deepEqual(ck.weights.get(name), t, name);
  }
  assert.equal((await loadCheckpoint(bytes)).path, `Uint8Array (${bytes.length} bytes)`);
  // Bytes are GGUF or nothing: another format's bytes fail on the magic, naming the source.
  await assert.rejects(
    loadCheckpoint(new TextEncoder().encode('{"dim": 8}')),
    /^FormatError: Uint8Array \(10 bytes\): bad magic: expected 'GGUF'/,
  );
});

const pyWhy = await pythonSkipReason("gguf, numpy");
Deno.test({
  name:
    "inspectCheckpoint() gives each tensor's stored type and bytes as gguf-py's GGUFReader reads them",
  ignore: pyWhy !== null,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "gollm-inspect-test-" });
    try {
      const q4km = `${tmp}/default.q4_k_m.gguf`;
      await quantizeModel(`${ROOT}models/default`, q4km, "q4_k_m");
      // gpt2: a fused attn_qkv (three canonical tensors share one GGUF tensor's bytes).
      for (const file of [q4km, `${ROOT}tests/fixtures/gguf/gpt2.gguf`]) {
        const script = `
import sys, json
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
print(json.dumps({t.name: [t.tensor_type.name, int(t.n_bytes)] for t in r.tensors}))
`;
        const r = await new Deno.Command("python3", { args: ["-c", script, file] }).output();
        assert.ok(r.success, new TextDecoder().decode(r.stderr));
        const py: Record<string, [string, number]> = JSON.parse(new TextDecoder().decode(r.stdout));
        const s = await inspectCheckpoint(file);
        const ck = await loadCheckpoint(file, { stored: true });
        assert.deepEqual([...s.tensors.keys()].sort(), [...ck.weights.keys()].sort());
        const bytesOf = new Map<string, number>();
        for (const [name, t] of s.tensors) {
          const [type] = py[t.stored] ?? assert.fail(`${name}: no tensor ${t.stored} in ${file}`);
          assert.equal(t.type, type, name);
          assert.deepEqual(t.shape, ck.weights.get(name)!.shape, name);
          bytesOf.set(t.stored, (bytesOf.get(t.stored) ?? 0) + t.bytes);
        }
        // Every tensor of the file is listed, and its parts add up to its bytes.
        assert.deepEqual(
          Object.fromEntries(bytesOf),
          Object.fromEntries(Object.entries(py).map(([n, [, b]]) => [n, b])),
        );
        assert.ok(s.tensors.size > bytesOf.size || !file.endsWith("gpt2.gguf")); // fused parts
      }
      assert.equal(
        (await inspectCheckpoint(q4km)).tensors.get("layers.5.ffn.w2.weight")!.type,
        "Q6_K",
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/**
 * A body that serves `bytes` and then zeros without end, counting what was pulled, and fails
 * past `limit` bytes: a reader that reads a GGUF whole fails on it; one that stops after the
 * header does not.
 */
function headerTrap(bytes: Uint8Array, limit: number) {
  const state = { pulled: 0 };
  const body = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (state.pulled >= limit) {
        ctl.error(new Error(`read past ${limit} bytes`));
        return;
      }
      const chunk = new Uint8Array(64 * 1024);
      if (state.pulled < bytes.length) {
        chunk.set(bytes.subarray(state.pulled, state.pulled + chunk.length));
      }
      state.pulled += chunk.length;
      ctl.enqueue(chunk);
    },
  });
  return { response: () => new Response(body), state };
}

Deno.test({
  name: "inspectCheckpoint() and loadCheckpointTokenizer() read a GGUF's header only",
  ignore: !haveFiles("the header-only test", [`${ASSETS}/stories260K/stories260K.gguf`]),
  async fn() {
    const file = `${ASSETS}/stories260K/stories260K.gguf`;
    const bytes = await Deno.readFile(file);
    const want = await inspectCheckpoint(file);
    const limit = 8 << 20;
    const a = headerTrap(bytes, limit);
    const got = await inspectCheckpoint(a.response());
    assert.deepEqual(got.config, want.config);
    assert.deepEqual(got.tensors, want.tensors);
    assert.deepEqual(
      got.tokenizer!.encode("Once upon a time"),
      want.tokenizer!.encode("Once upon a time"),
    );
    assert.ok(a.state.pulled <= 2 << 20, `pulled ${a.state.pulled} bytes`);
    const b = headerTrap(bytes, limit);
    const tok = await loadCheckpointTokenizer(b.response());
    assert.deepEqual(tok!.encode("Once upon a time"), want.tokenizer!.encode("Once upon a time"));
    assert.ok(b.state.pulled <= 2 << 20, `pulled ${b.state.pulled} bytes`);
    // Negative control: loading the same body reads on until the trap fails it.
    await assert.rejects(loadCheckpoint(headerTrap(bytes, limit).response()), /read past/);
  },
});

Deno.test("inspectCheckpoint() of gollm and HF directories reads the safetensors headers only, as loading tables them", async () => {
  const dirs = [
    `${ROOT}models/default`,
    ...[...Deno.readDirSync(`${ROOT}tests/fixtures/hf`)]
      .filter((e) => e.isDirectory).map((e) => `${ROOT}tests/fixtures/hf/${e.name}`),
  ];
  assert.ok(dirs.length >= 15, dirs.join(" "));
  for (const dir of dirs) {
    const s = await inspectCheckpoint(dir);
    const ck = await loadCheckpoint(dir, { stored: true });
    assert.deepEqual(s.config, ck.config, dir);
    assert.deepEqual(s.extraEosIds, ck.extraEosIds, dir);
    assert.deepEqual([...s.tensors.keys()].sort(), [...ck.weights.keys()].sort(), dir);
    for (const [name, t] of ck.weights) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const want = {
        shape: t.shape,
        type: t.type?.name ?? "F32",
        bytes: t.type ? t.bytes.length : 4 * n,
      };
      const { stored: _, ...got } = s.tensors.get(name)!;
      assert.deepEqual(got, want, `${dir} ${name}`);
    }
  }
  // No tensor data is read: a BF16 NaN that loading refuses does not reach inspect.
  const tmp = await Deno.makeTempDir({ prefix: "gollm-inspect-hf-" });
  try {
    const src = `${ROOT}tests/fixtures/hf/phi3_bf16`;
    for (const e of Deno.readDirSync(src)) {
      await Deno.copyFile(`${src}/${e.name}`, `${tmp}/${e.name}`);
    }
    const bytes = await Deno.readFile(`${tmp}/model.safetensors`);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    const [begin] = header["model.layers.0.self_attn.qkv_proj.weight"].data_offsets;
    bytes.set([0xc1, 0x7f], 8 + n + begin); // a matrix's first element: a BF16 NaN
    await Deno.writeFile(`${tmp}/model.safetensors`, bytes);
    await assert.rejects(loadCheckpoint(tmp, { stored: true }), /non-finite \(NaN\)/);
    assert.equal(
      (await inspectCheckpoint(tmp)).tensors.size,
      (await inspectCheckpoint(src)).tensors.size,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
