/**
 * `gollm inspect`: config, parameter count, tensor table and memory plan of a checkpoint.
 *
 * @module
 */
import { planArena } from "../codegen/plan.ts";
import {
  FP16_V8_FLAG,
  fp16SimdSupported,
  relaxedDotU8,
  relaxedSimdSupported,
} from "../codegen/wasm_features.ts";
import { CONFIG_FIELDS, parameterCount } from "../core/config.ts";
import { kvTypeBytes } from "../core/forward.ts";
import { inspectCheckpoint } from "../formats/load.ts";
import { expectedShapes } from "../core/weights.ts";
import { type Command, parse } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import {
  CACHE_TYPE_OPTIONS,
  checkKvCapacity,
  KV_CAPACITY_OPTION,
  MODEL_OPTION,
  MODEL_POSITIONAL,
  modelSource,
  PREFILL_CHUNK_OPTION,
  TOKENIZER_OPTION,
} from "./model_flags.ts";
import { formatBytes, formatCount, out, outJson } from "./output.ts";
import { withProgress } from "./progress_line.ts";

const SPEC = {
  name: "inspect",
  summary: "config, parameter count, tensors and memory plan of a checkpoint",
  usage: "[PATH] [--kv-capacity N] [--prefill-chunk T] [--cache-type-k T] [--json]",
  description:
    `Prints a checkpoint's config, parameter count, tensor table (shape, stored type, bytes) and
memory plan: weight bytes as stored (what the wasm backend holds) and as F32 (jit,
reference), arena bytes (activations + KV cache + RoPE table) and KV cache bytes; and what
this runtime's WebAssembly offers the wasm kernels (relaxed SIMD, the u8 dot product, the
FP16 proposal). A GGUF (a file or an http(s) URL) is read only as far as its header.`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...MODEL_OPTION,
    ...KV_CAPACITY_OPTION,
    ...PREFILL_CHUNK_OPTION,
    ...CACHE_TYPE_OPTIONS,
    ...TOKENIZER_OPTION,
    json: { type: "bool", description: "print one JSON object" },
  },
} as const;

/**
 * The `inspect` subcommand: parse → load the checkpoint → plan the arena → print the config,
 * parameter count, tensor table and memory plan (bytes) as text or JSON.
 *
 * @example
 * ```ts ignore
 * import { inspect } from "./inspect.ts";
 * await inspect.run(["models/default", "--json"]);
 * ```
 */
export const inspect: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const { values: v, usage } = p;
    const kvCapacity = v["kv-capacity"], prefillChunk = v["prefill-chunk"];
    const json = v.json;
    const path = v.model ?? await resolveDefaultModel(json);
    const ckpt = await withProgress(
      json,
      async (onProgress) => {
        const ckpt = await inspectCheckpoint(modelSource(path), {
          tokenizerPath: v.tokenizer,
          onProgress,
        });
        checkKvCapacity(kvCapacity, ckpt.config.context_length, path, usage);
        return ckpt;
      },
      () => `read ${path}`,
    );
    const c = ckpt.config;
    const cacheTypeK = v["cache-type-k"], cacheTypeV = v["cache-type-v"];
    const plan = planArena(c, { kvCapacity, prefillChunk, cacheTypeK, cacheTypeV });
    const order = [...expectedShapes(c).keys()];
    const rank = (n: string) => (order.indexOf(n) + order.length + 1) % (order.length + 1);
    const tensors = [...ckpt.tensors].sort((a, b) => rank(a[0]) - rank(b[0])).map(([name, t]) => ({
      name,
      shape: t.shape,
      params: t.shape.reduce((a, b) => a * b, 1),
      type: t.type,
      bytes: t.bytes,
      stored_name: t.stored,
    }));
    const weightBytes = tensors.reduce((a, t) => a + 4 * t.params, 0); // F32: jit, reference
    const storedBytes = tensors.reduce((a, t) => a + t.bytes, 0); // as stored: wasm
    const typeCounts = new Map<string, number>();
    for (const t of tensors) typeCounts.set(t.type, (typeCounts.get(t.type) ?? 0) + 1);
    const params = parameterCount(c);
    const tok = ckpt.tokenizer;
    const eosIds = [...new Set([...(tok?.eosIds ?? []), ...(ckpt.extraEosIds ?? [])])];
    const memory = {
      kv_capacity: plan.kvCapacity,
      prefill_chunk: plan.prefillChunk,
      weights_bytes: weightBytes,
      weights_stored_bytes: storedBytes,
      arena_bytes: plan.arenaBytes,
      kv_bytes: plan.kvBytes,
      kv_block_size: plan.layout.blockSize,
      kv_blocks: plan.layout.numBlocks,
      kv_block_bytes: plan.blockBytes,
      kv_cache_type_k: cacheTypeK,
      kv_cache_type_v: cacheTypeV,
      step_bytes: plan.stepBytes,
      activation_bytes: plan.activationBytes,
      rope_table_bytes: plan.tableBytes,
      total_bytes: weightBytes + plan.arenaBytes,
      total_stored_bytes: storedBytes + plan.arenaBytes,
    };
    // What the wasm kernels may use here (codegen/wasm_features.ts).
    const wasm = {
      relaxed_simd: relaxedSimdSupported(),
      dot_u8: relaxedDotU8(), // false without relaxed SIMD
      fp16: fp16SimdSupported(),
    };

    if (json) {
      await outJson({
        path,
        format: ckpt.format,
        config: c,
        parameters: params,
        tensors,
        memory,
        wasm_features: wasm,
        tokenizer: tok
          ? {
            vocab_size: tok.vocabSize,
            bos_id: tok.bosId,
            eos_ids: eosIds,
            add_bos: tok.addBos,
            chat_template: tok.chatTemplate !== undefined,
          }
          : null,
      });
      return 0;
    }

    const lines: string[] = [];
    lines.push(`model: ${path} (${ckpt.format})`);
    lines.push("config:");
    const keyW = Math.max(...CONFIG_FIELDS.map((k) => k.length));
    for (const k of CONFIG_FIELDS) lines.push(`  ${k.padEnd(keyW)}  ${c[k]}`);
    lines.push(`parameters: ${formatCount(params)} (${(params / 1e6).toFixed(2)} M)`);
    lines.push(
      tok
        ? `tokenizer: ${tok.vocabSize} ids, bos ${tok.bosId ?? "none"}, eos [${
          eosIds.join(", ")
        }], add_bos ${tok.addBos}${tok.chatTemplate !== undefined ? ", chat template" : ""}`
        : "tokenizer: none (token ids only)",
    );
    lines.push(`tensors (${tensors.length}):`);
    const nameW = Math.max(4, ...tensors.map((t) => t.name.length));
    const shapeW = Math.max(5, ...tensors.map((t) => `[${t.shape.join(", ")}]`.length));
    const typeW = Math.max(4, ...tensors.map((t) => t.type.length));
    lines.push(
      `  ${"name".padEnd(nameW)}  ${"shape".padEnd(shapeW)}  ${"type".padEnd(typeW)}  ${
        "params".padStart(12)
      }  ${"bytes".padStart(14)}`,
    );
    for (const t of tensors) {
      lines.push(
        `  ${t.name.padEnd(nameW)}  ${`[${t.shape.join(", ")}]`.padEnd(shapeW)}  ${
          t.type.padEnd(typeW)
        }  ${formatCount(t.params).padStart(12)}  ${formatCount(t.bytes).padStart(14)}`,
      );
    }
    lines.push(
      `memory plan (kv_capacity ${plan.kvCapacity}, prefill_chunk ${plan.prefillChunk}):`,
    );
    const row = (label: string, bytes: number, note = "") =>
      `  ${label.padEnd(14)} ${formatBytes(bytes).padStart(10)}  ${
        formatCount(bytes).padStart(14)
      } B${note}`;
    const types = [...typeCounts].map(([t, n]) => `${t} x ${n}`).join(", ");
    lines.push(row("weights", storedBytes, `  (as stored: ${types}; the wasm backend's)`));
    lines.push(row("  as f32", weightBytes, "  (the jit and reference backends')"));
    lines.push(row("arena", plan.arenaBytes, "  (KV cache + activations + step + RoPE table)"));
    const { numBlocks, blockSize } = plan.layout;
    lines.push(
      row(
        "  KV cache",
        plan.kvBytes,
        `  (K ${cacheTypeK} + V ${cacheTypeV}: ${c.n_layers} layers x ${numBlocks} blocks of ` +
          `${blockSize} x ${c.n_kv_heads * c.head_dim} kv_dim x ` +
          `(${kvTypeBytes(cacheTypeK)} + ${kvTypeBytes(cacheTypeV)}) B)`,
      ),
    );
    lines.push(row("  activations", plan.activationBytes));
    lines.push(row("  step, tables", plan.stepBytes, "  (int32 rows of a step, block table)"));
    lines.push(row("  RoPE table", plan.tableBytes));
    lines.push(row("total", storedBytes + plan.arenaBytes, "  (weights as stored + arena)"));
    const yes = (b: boolean) => b ? "yes" : "no";
    lines.push(
      `wasm runtime: relaxed SIMD ${yes(wasm.relaxed_simd)}, u8 dot product ${yes(wasm.dot_u8)}, ` +
        `FP16 proposal ${yes(wasm.fp16)}${wasm.fp16 ? "" : ` (start deno with ${FP16_V8_FLAG})`}`,
    );
    await out(lines.join("\n") + "\n");
    return 0;
  },
};
