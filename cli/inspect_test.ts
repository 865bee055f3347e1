/**
 * `gollm inspect` as a subprocess: the wasm runtime line and `wasm_features` (with and without
 * V8's FP16 flag), and the memory plan of the runtime's prefill chunk.
 */
import assert from "node:assert/strict";
import { DEFAULT_PREFILL_CHUNK } from "../codegen/plan.ts";
import { FP16_V8_FLAG } from "../codegen/wasm_features.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** `deno run -A [flags] cli/main.ts inspect models/default [--json] [args]`: its stdout. */
async function inspect(flags: string[], json: boolean, args: string[] = []): Promise<string> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, `${ROOT}cli/main.ts`, "inspect", "models/default"].concat(
      json ? ["--json"] : [],
      args,
    ),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

Deno.test("inspect shows the runtime's wasm features and plans the runtime's prefill chunk", async () => {
  const [plain, flagged, text] = await Promise.all([
    inspect([], true).then(JSON.parse),
    inspect([FP16_V8_FLAG], true).then(JSON.parse),
    inspect([], false),
  ]);
  assert.equal(flagged.wasm_features.fp16, true, "deno was started with the FP16 flag");
  assert.equal(plain.wasm_features.relaxed_simd, flagged.wasm_features.relaxed_simd);
  assert.equal(plain.memory.prefill_chunk, DEFAULT_PREFILL_CHUNK); // what generate runs
  const line = text.trimEnd().split("\n").at(-1)!;
  assert.match(
    line,
    /^wasm runtime: relaxed SIMD (yes|no), u8 dot product (yes|no), FP16 proposal/,
  );
  // The text names the flag exactly when the JSON of a run without it says no FP16.
  assert.equal(line.includes(FP16_V8_FLAG), !plain.wasm_features.fp16);
});

Deno.test("inspect --cache-type-k f16 --cache-type-v f16 plans a KV cache of half the bytes", async () => {
  const [f32, f16] = await Promise.all([
    inspect([], true).then(JSON.parse),
    inspect([], true, ["--cache-type-k", "f16", "--cache-type-v", "f16"]).then(JSON.parse),
  ]);
  assert.equal(f16.memory.kv_bytes * 2, f32.memory.kv_bytes);
  assert.equal(f16.memory.kv_block_bytes * 2, f32.memory.kv_block_bytes);
  assert.deepEqual([f16.memory.kv_cache_type_k, f16.memory.kv_cache_type_v], ["f16", "f16"]);
  assert.equal(f32.memory.kv_cache_type_k, "f32");
});
