/**
 * What a graph uses of the ops and attributes issue #10 added to codegen/graph.ts (Gemma's
 * GeGLU and soft-capping, QK-norm, partial rotary, YaRN's attention factor, Gemma's attention
 * and embedding scales, a local RoPE table): the checklist of a backend's renderers. Both
 * backends render every one (the JS kernels, codegen/ops/*; the WASM module,
 * codegen/wasm/renderers.ts); a new backend that renders only the original ops would refuse a
 * model that uses any of them, naming it.
 *
 * @module
 */
import type { Graph } from "./graph.ts";

/**
 * The ops and attributes of issue #10 a graph uses, one line each (`geglu (GeGLU MLP)`,
 * `norm over 8 heads (QK-norm)`, ...): what a backend must render beyond the original ops. Per-layer windows (`layer_window`), sandwich norms (plain `norm` nodes) and
 * RoPE scaling (the values of the `rope.inv_freq` table) are not listed: they need nothing new
 * of a renderer.
 *
 * @param graph A graph from codegen/graph.ts `buildGraph`.
 * @returns Descriptions in first-use order, empty for a graph of the original ops only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig, parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { buildGraph } from "./graph.ts";
 * import { extendedFeatures } from "./graph_features.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const layout = resolveBatchLayout({ numBlocks: 8 });
 * assert.deepEqual(extendedFeatures(buildGraph(c, 1, layout)), []);
 * const qwen3 = parseConfig({ ...c, qk_norm: true }, "q");
 * assert.deepEqual(extendedFeatures(buildGraph(qwen3, 1, layout)), [
 *   "norm over 4 heads (QK-norm)", // q
 *   "norm over 2 heads (QK-norm)", // k
 * ]);
 * ```
 */
export function extendedFeatures(graph: Graph): string[] {
  const out = new Set<string>();
  for (const n of graph.nodes) {
    switch (n.op) {
      case "geglu":
        out.add("geglu (GeGLU MLP)");
        break;
      case "softcap":
        out.add(`softcap (logit soft-capping at ${n.attrs.cap})`);
        break;
      case "norm":
        if ((n.attrs.heads ?? 1) > 1) out.add(`norm over ${n.attrs.heads} heads (QK-norm)`);
        break;
      case "rope":
        if ((n.attrs.rot_dim ?? n.attrs.head_dim) !== n.attrs.head_dim) {
          out.add(`rope on ${n.attrs.rot_dim} of ${n.attrs.head_dim} dims (partial rotary)`);
        }
        break;
      case "rope_cos_sin":
        if ((n.attrs.mscale ?? 1) !== 1) out.add(`rope_cos_sin × ${n.attrs.mscale} (YaRN)`);
        break;
      case "attention":
        if (n.attrs.softcap != null) out.add(`attention softcap ${n.attrs.softcap}`);
        if (n.attrs.scale !== 1 / Math.sqrt(n.attrs.head_dim)) {
          out.add(`attention scale ${n.attrs.scale} (query_pre_attn_scalar)`);
        }
        break;
      case "embed":
        if ((n.attrs.scale ?? 1) !== 1) out.add(`embed scale ${n.attrs.scale}`);
        break;
    }
  }
  if (graph.buffers.has("rope.inv_freq_local")) {
    out.add("a local RoPE table (rope_local_base_freq)");
  }
  return [...out];
}
