/**
 * The speculative decoding flags of `generate` and `chat` (llama.cpp's names: `--draft-max`,
 * `--draft-min`, `--draft-p-min`; `--ngram` for prompt lookup, as `gollm serve`), loading the draft model
 * they name, and the stats line they add.
 *
 * @module
 */
import type { Model } from "../runtime/model.ts";
import { loadModel } from "../runtime/model.ts";
import type { SpeculativeStats } from "../runtime/speculative.ts";
import {
  checkSpeculativeOptions,
  DEFAULT_DRAFT_MAX,
  type SpeculativeGenerateOptions,
} from "../runtime/speculative_decode.ts";
import { NgramProposer } from "../runtime/speculative_ngram.ts";
import { type OptionSpec, UsageError, type Values } from "./args.ts";
import { modelSource } from "./model_flags.ts";
import { withProgress } from "./progress_line.ts";

/** `--draft`, `--ngram`, `--ngram-max`, `--draft-max`, `--draft-min`, `--draft-p-min`. */
export const SPECULATIVE_OPTIONS = {
  draft: {
    type: "string",
    meta: "PATH",
    description: "speculative decoding with this draft model (same vocabulary as the model; " +
      "e.g. models/draft for the default model): it drafts, the model verifies several " +
      "tokens per forward pass; same output distribution, greedy output unchanged",
  },
  ngram: {
    type: "bool",
    description: "speculative decoding by prompt lookup: draft the tokens that followed the " +
      "last n-gram where it occurred earlier in the prompt or output (no draft model)",
  },
  "ngram-max": {
    type: "int",
    min: 1,
    default: 3,
    meta: "N",
    description: "--ngram: longest n-gram matched (then shorter ones down to 1)",
  },
  "draft-max": {
    type: "int",
    min: 1,
    default: DEFAULT_DRAFT_MAX,
    meta: "K",
    description: "most tokens drafted per step (fewer after rejections: adaptive)",
  },
  "draft-min": {
    type: "int",
    min: 0,
    default: 0,
    meta: "K",
    description: "a shorter draft is not verified (a plain step instead)",
  },
  "draft-p-min": {
    type: "number",
    min: 0,
    max: 1,
    default: 0,
    meta: "P",
    description: "--draft: stop drafting when the draft model's top probability is below P",
  },
} as const satisfies Record<string, OptionSpec>;

/**
 * Checks the speculative flags that need no model: `--draft` and `--ngram` exclude each
 * other. Commands call it right after parsing, before loading anything.
 *
 * @param v Parsed values of a spec that includes {@linkcode SPECULATIVE_OPTIONS}.
 * @param usage Usage line for errors.
 * @throws {UsageError} for `--draft` with `--ngram`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSpeculativeFlags } from "./speculative_flags.ts";
 * assert.throws(
 *   () => checkSpeculativeFlags({ draft: "models/draft", ngram: true }, "usage"),
 *   /give --draft or --ngram, not both/,
 * );
 * ```
 */
export function checkSpeculativeFlags(
  v: Pick<Values<typeof SPECULATIVE_OPTIONS>, "draft" | "ngram">,
  usage: string,
): void {
  if (v.draft !== undefined && v.ngram) {
    throw new UsageError("give --draft or --ngram, not both (one proposer at a time)", usage);
  }
}

/**
 * Builds the speculative `GenerateOptions` fields from the flags: loads the `--draft` model
 * (with the model's backend) under a progress line and checks at once that it can draft for
 * the model (vocabulary), so `chat` fails at startup, not at the first message.
 *
 * @param v Parsed values of a spec that includes {@linkcode SPECULATIVE_OPTIONS}.
 * @param target The loaded model.
 * @param usage Usage line for errors.
 * @param quiet No progress line.
 * @returns The fields (empty without `--draft` or `--ngram`).
 * @throws {UsageError} for `--draft` with `--ngram`.
 * @throws {GollmError} for a missing or malformed draft checkpoint, or one whose vocabulary
 *   differs from the model's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createModel } from "../runtime/model.ts";
 * import { speculativeFlags } from "./speculative_flags.ts";
 * const v = {
 *   draft: undefined, ngram: true, "ngram-max": 2, "draft-max": 4, "draft-min": 0,
 *   "draft-p-min": 0,
 * };
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const model = createModel(c, randomWeights(c, 1), null, { backend: "reference" });
 * const o = await speculativeFlags(v, model, "usage: gollm generate");
 * assert.equal(o.draft && "name" in o.draft ? o.draft.name : "", "ngram 1..2");
 * assert.equal(o.draftMax, 4);
 * ```
 */
export async function speculativeFlags(
  v: Values<typeof SPECULATIVE_OPTIONS>,
  target: Model,
  usage: string,
  quiet = false,
): Promise<SpeculativeGenerateOptions> {
  checkSpeculativeFlags(v, usage);
  const backend = target.backend;
  const common = {
    draftMax: v["draft-max"],
    draftMin: v["draft-min"],
    draftPMin: v["draft-p-min"],
  };
  if (v.ngram) return { draft: new NgramProposer({ ngramMax: v["ngram-max"] }), ...common };
  const path = v.draft;
  if (path === undefined) return {};
  const draft = await withProgress(
    quiet,
    (onProgress) => loadModel(modelSource(path), { backend, onProgress }),
    (m) => `loaded draft ${path} (${m.checkpoint.format}, ${backend})`,
  );
  const options = { draft, ...common };
  checkSpeculativeOptions(target, options);
  return options;
}

/**
 * The stats of a speculative generation in one phrase.
 *
 * @param s The counters from `GenerateStats.speculative`.
 * @returns E.g. `speculative (ngram 1..3): 61/80 drafts accepted (76.3 %), 3.05 tokens per
 *   target step`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { speculativeLine } from "./speculative_flags.ts";
 * const line = speculativeLine({
 *   proposer: "ngram 1..3", draftMax: 8, steps: 20, drafted: 80, accepted: 61,
 *   acceptanceRate: 61 / 80, tokensPerStep: 3.05, draftMs: 0.2,
 * });
 * assert.equal(line, "speculative (ngram 1..3): 61/80 drafts accepted (76.3 %), 3.05 tokens per target step");
 * ```
 */
export function speculativeLine(s: SpeculativeStats): string {
  return `speculative (${s.proposer}): ${s.accepted}/${s.drafted} drafts accepted ` +
    `(${(s.acceptanceRate * 100).toFixed(1)} %), ${s.tokensPerStep.toFixed(2)} tokens per ` +
    `target step`;
}

/**
 * The speculative stats for `--json`, in snake_case.
 *
 * @param s The counters.
 * @returns `{proposer, draft_max, steps, drafted, accepted, acceptance_rate,
 *   tokens_per_step, draft_ms}`.
 */
export function speculativeJson(s: SpeculativeStats): Record<string, string | number> {
  const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
  return {
    proposer: s.proposer,
    draft_max: s.draftMax,
    steps: s.steps,
    drafted: s.drafted,
    accepted: s.accepted,
    acceptance_rate: r4(s.acceptanceRate),
    tokens_per_step: r4(s.tokensPerStep),
    draft_ms: Math.round(s.draftMs * 100) / 100,
  };
}
