import assert from "node:assert/strict";
import { configToYaml } from "../core/config.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { ConfigError, FormatError, GollmError } from "../core/errors.ts";
import { loadGollmDir, writeGollmDir } from "./gollm_dir.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import { randomWeights } from "../core/weights.ts";
import { tensorToF32 } from "./quant/tensor.ts";
import { assertClose } from "../tests/assert_close.ts";
import { byteTokenizer, tinyConfig } from "../tests/model_fixtures.ts";

function checkpoint(arch: "llama" | "gpt2" = "llama", withTokenizer = true): Checkpoint {
  const config = tinyConfig(arch, { dim: 24, hidden_dim: 40, n_layers: 2 });
  return {
    format: "gollm",
    path: "<test>",
    config,
    weights: randomWeights(config, 11),
    tokenizer: withTokenizer ? byteTokenizer() : null,
  };
}

/** Largest f16 rounding error for values up to |x| (half an ulp at 11 significant bits). */
function f16Tol(x: number): number {
  return Math.max(Math.abs(x) * 2 ** -11, 2 ** -24);
}

Deno.test("writeGollmDir() then loadGollmDir() round-trips f32 weights, config and tokenizer", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = checkpoint("llama");
    src.extraEosIds = [5];
    src.generation = { temperature: 0.6, top_p: 0.9 };
    await writeGollmDir(src, `${tmp}/m`, { dtype: "f32" });
    const names = [...Deno.readDirSync(`${tmp}/m`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["config.yaml", "model.safetensors", "tokenizer.tiktoken"]);
    const back = await loadGollmDir(`${tmp}/m`);
    assert.equal(back.format, "gollm");
    assert.deepEqual(back.config, { ...src.config, tokenizer: "tokenizer.tiktoken" });
    assert.equal(back.weights.size, src.weights.size);
    for (const [name, t] of src.weights) {
      const u = back.weights.get(name)!;
      assert.deepEqual(u.shape, t.shape, name);
      assert.deepEqual(u.data, t.data, name);
    }
    const text = "héllo, wörld <|eos|>";
    assert.deepEqual(back.tokenizer!.encode(text), src.tokenizer!.encode(text));
    assert.equal(back.tokenizer!.bosId, 256);
    assert.deepEqual(back.extraEosIds, [5]);
    assert.deepEqual(back.generation, { temperature: 0.6, top_p: 0.9 });
    const { metadata } = await readSafetensors(`${tmp}/m/model.safetensors`);
    assert.equal(metadata.format, "gollm");
    assert.equal(metadata.format_version, "1");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("writeGollmDir() f16 stores half-precision values within f16 rounding", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = checkpoint("gpt2", false);
    await writeGollmDir(src, `${tmp}/m`, { dtype: "f16" });
    const f32Size = src.weights.values().reduce((a, t) => a + 4 * t.data.length, 0);
    const size = (await Deno.stat(`${tmp}/m/model.safetensors`)).size;
    assert.ok(size < f32Size * 0.55, `f16 file ${size} B should be about half of ${f32Size} B`);
    const { dtypes } = await readSafetensors(`${tmp}/m/model.safetensors`);
    assert.deepEqual(new Set(dtypes.values()), new Set(["F16"]));
    const back = await loadGollmDir(`${tmp}/m`);
    assert.equal(back.tokenizer, null);
    assert.equal(back.config.tokenizer, "none");
    for (const [name, t] of src.weights) {
      const u = back.weights.get(name)!.data;
      const maxAbs = t.data.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      assertClose(u, t.data, f16Tol(maxAbs), name);
      // Rounding happened: not every value survives exactly.
      if (name === "tok_embeddings.weight") assert.notDeepEqual(u, t.data);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("writeGollmDir() leaves nothing behind when writing fails half way", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = checkpoint("llama");
    const tok = src.tokenizer!;
    src.tokenizer = new Proxy(tok, {
      get(target, prop) {
        if (prop === "toFile") {
          return () => {
            throw new GollmError("disk full (simulated)");
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    await assert.rejects(writeGollmDir(src, `${tmp}/m`), /disk full \(simulated\)/);
    assert.deepEqual([...Deno.readDirSync(tmp)], [], "no output and no temporary directory");

    // Existing output is refused unless overwrite is set, and is replaced whole when it is.
    await Deno.mkdir(`${tmp}/m`);
    await Deno.writeTextFile(`${tmp}/m/old.txt`, "x");
    await assert.rejects(writeGollmDir(checkpoint(), `${tmp}/m`), /already exists/);
    await writeGollmDir(checkpoint(), `${tmp}/m`, { overwrite: true });
    const names = [...Deno.readDirSync(`${tmp}/m`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["config.yaml", "model.safetensors", "tokenizer.tiktoken"]);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), ["m"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadGollmDir() rejects wrong safetensors metadata with the file and field named", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = checkpoint("llama", false);
    await Deno.writeTextFile(`${tmp}/config.yaml`, configToYaml(src.config));
    const st = `${tmp}/model.safetensors`;
    const cases: [Record<string, string> | undefined, RegExp][] = [
      [undefined, /__metadata__\.format must be "gollm", got nothing/],
      [{ format: "pt" }, /__metadata__\.format must be "gollm", got "pt"/],
      [{ format: "gollm" }, /__metadata__\.format_version must be a positive integer/],
      [{ format: "gollm", format_version: "2" }, /format_version is 2; this gollm reads up to 1/],
    ];
    for (const [metadata, re] of cases) {
      await writeSafetensors(st, src.weights, { dtype: "F32", metadata });
      const e = await loadGollmDir(tmp).then(() => null, (e) => e);
      assert.ok(e instanceof FormatError, `expected FormatError for ${JSON.stringify(metadata)}`);
      assert.match(e.message, re);
      assert.ok(e.message.startsWith(st), e.message);
    }
    // Good metadata but a tensor missing.
    const fewer = new Map(src.weights);
    fewer.delete("norm.weight");
    await writeSafetensors(st, fewer, {
      dtype: "F32",
      metadata: { format: "gollm", format_version: "1" },
    });
    await assert.rejects(loadGollmDir(tmp), /tensor 'norm\.weight' is missing/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadGollmDir() names a missing tokenizer file and a missing model.safetensors", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = checkpoint("llama", false);
    await Deno.writeTextFile(
      `${tmp}/config.yaml`,
      configToYaml({ ...src.config, tokenizer: "tokenizer.tiktoken" }),
    );
    await assert.rejects(loadGollmDir(tmp), /model\.safetensors is missing/);
    await writeSafetensors(`${tmp}/model.safetensors`, src.weights, {
      dtype: "F32",
      metadata: { format: "gollm", format_version: "1" },
    });
    const e = await loadGollmDir(tmp).then(() => null, (e) => e);
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /field 'tokenizer' names "tokenizer\.tiktoken" but .* does not exist/);
    // optionalTokenizer: the weights load, without a tokenizer (token ids only).
    const ids = await loadGollmDir(tmp, { optionalTokenizer: true });
    assert.equal(ids.tokenizer, null);
    assert.equal(ids.weights.size, src.weights.size);
    // Other errors still fail.
    await Deno.writeTextFile(`${tmp}/config.yaml`, "arch: llama\n");
    await assert.rejects(loadGollmDir(tmp, { optionalTokenizer: true }), ConfigError);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("writeGollmDir() keeps the tokenizer's chat template in chat_template.jinja", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const tpl = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}";
    const src = { ...checkpoint("llama"), tokenizer: byteTokenizer(tpl) };
    await writeGollmDir(src, `${tmp}/m`);
    assert.equal(await Deno.readTextFile(`${tmp}/m/chat_template.jinja`), tpl);
    const back = await loadGollmDir(`${tmp}/m`);
    assert.equal(back.tokenizer!.chatTemplate, tpl);
    assert.deepEqual(back.tokenizer!.encode("hi"), [256, 104, 105]);
    assert.equal(back.tokenizer!.toFile().name, "tokenizer.tiktoken");
    // Methods are bound once (tokenBytes runs per generated token), and still work.
    assert.equal(back.tokenizer!.tokenBytes, back.tokenizer!.tokenBytes);
    assert.deepEqual([...back.tokenizer!.tokenBytes(104)], [104]);
    // No template: no file.
    await writeGollmDir(checkpoint("llama"), `${tmp}/n`);
    assert.ok(!(await Deno.stat(`${tmp}/n/chat_template.jinja`).then(() => true, () => false)));
    assert.equal((await loadGollmDir(`${tmp}/n`)).tokenizer!.chatTemplate, undefined);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadGollmDir() with stored keeps the F16 matrices of models/default as stored, their values exact", async () => {
  const f32 = await loadGollmDir("models/default");
  const stored = await loadGollmDir("models/default", { stored: true });
  const { dtypes } = await readSafetensors("models/default/model.safetensors");
  assert.equal(stored.weights.size, f32.weights.size);
  for (const [name, t] of stored.weights) {
    // Matrices in the file's type, vectors (norms) F32, as a GGUF holds them.
    assert.equal(t.type?.name, t.shape.length === 2 ? dtypes.get(name) : undefined, name);
    assert.deepEqual(tensorToF32(t).data, f32.weights.get(name)!.data, name);
  }
  assert.ok([...stored.weights.values()].some((t) => t.type?.name === "F16"));
});
