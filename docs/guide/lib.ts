/**
 * What every step of the guide shares: where the real weights are, how a step prints its
 * sections, figures and checks, and how a failed check stops it.
 *
 * A step prints sections that start with a line `== title ==`; the page shows each section
 * in a text block (docs/guide/pages.ts copies them in). A check prints one `check ok:` line,
 * or one `error:` line on stderr and exits with status 1. A line that starts with `~` is a
 * figure measured on the machine that ran the step (a time, a speed): the pages show the
 * figures of the machine they were captured on, and the drift check compares only its label.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../../core/config.ts";
import type { F32Weights as Weights } from "../../core/weights.ts";
import { loadCheckpoint } from "../../formats/load.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";

/** The repository root, with a trailing slash. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** Real assets nobody here wrote: `$GOLLM_ASSETS`, else `../shared/assets` beside the root. */
export const ASSETS: string = Deno.env.get("GOLLM_ASSETS") ?? `${ROOT}../shared/assets`;

/** Whether `path` is a regular file. */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The stories260K checkpoint and its tokenizer (llama2.c format). */
export const STORIES = `${ASSETS}/stories260K/stories260K.bin`;

/** A model the steps run on: its name, config, F32 weights and tokenizer. */
export interface GuideModel {
  /** `stories260K` or `models/default`. */
  name: string;
  /** The validated config (core/config.ts). */
  config: ModelConfig;
  /** Canonical tensor name → F32 tensor (core/tensor_names.ts). */
  weights: Weights;
  /** The model's tokenizer. */
  tokenizer: Tokenizer;
}

/**
 * Loads stories260K (Karpathy's tinyllamas, from the shared assets) or, when it is absent,
 * the default model shipped in `models/default`, and prints one line saying which.
 */
export async function loadGuideModel(): Promise<GuideModel> {
  const stories = isFile(STORIES);
  const path = stories ? STORIES : `${ROOT}models/default`;
  const ckpt = await loadCheckpoint(path);
  const name = stories ? "stories260K" : "models/default";
  const where = stories ? "llama2.c checkpoint from the shared assets" : "shipped with gollm";
  console.log(`model: ${name} (${where})`);
  if (!stories) console.log(`note: ${STORIES} is absent; the page's figures are stories260K's`);
  return { name, config: ckpt.config, weights: ckpt.weights, tokenizer: ckpt.tokenizer! };
}

/** The F32 data of a weight by canonical name (`layers.0.attn.wq.weight`). */
export function weight(model: GuideModel, name: string): Float32Array {
  const t = model.weights.get(name);
  if (!t) fail(`${model.name} has no tensor ${name}`);
  return t.data;
}

/** Prints the header line of a section: `== title ==` (blank line before, except the first). */
export function section(title: string): void {
  if (printed) console.log();
  printed = true;
  console.log(`== ${title} ==`);
}
let printed = false;

/** Prints `error: <message>` on stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/**
 * A claim the step makes, checked: prints `check ok: <claim> (<detail>)`, or fails the step
 * with `error: check failed: <claim> (<detail>)`.
 */
export function check(claim: string, ok: boolean, detail: string): void {
  if (!ok) fail(`check failed: ${claim} (${detail})`);
  console.log(`check ok: ${claim} (${detail})`);
}

/**
 * A negative control: shows that a check would catch a mistake. `caught` must be true (the
 * broken variant differs); otherwise the check is too weak to mean anything and the step
 * fails.
 */
export function control(mistake: string, caught: boolean, detail: string): void {
  if (!caught) fail(`negative control not caught: ${mistake} (${detail})`);
  console.log(`control: ${mistake} is caught (${detail})`);
}

/** Prints a figure measured on this machine: `~ <label>: <value>`. */
export function measured(label: string, value: string): void {
  console.log(`~ ${label}: ${value}`);
}

/** Largest |a[i] - b[i]|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) fail(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** `(5, 64)`: a shape as the pages write it. */
export function shape(...dims: number[]): string {
  return `(${dims.join(", ")})`;
}

/** The first `n` values of `v` with `digits` decimals: `[0.1234, -0.5, ...]`. */
export function vec(v: ArrayLike<number>, n = 6, digits = 4): string {
  const shown = Array.from({ length: Math.min(n, v.length) }, (_, i) => fixed(v[i], digits));
  return `[${shown.join(", ")}${v.length > n ? ", ..." : ""}]`;
}

/** `x` with `digits` decimals, `-0` printed as `0`. */
export function fixed(x: number, digits = 4): string {
  const s = x.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

/** A number in scientific notation with 2 significant digits (`2.4e-8`), 0 as `0`. */
export function sci(x: number): string {
  return x === 0 ? "0" : x.toExponential(1);
}

/** An integer with thousands separators: `1,056,540`. */
export function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Prints rows as left-aligned columns separated by two spaces (numbers right-aligned). */
export function table(rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const width: number[] = [];
  for (const r of cells) r.forEach((c, i) => width[i] = Math.max(width[i] ?? 0, c.length));
  const numeric = (s: string) => /^[-+~]?\d[\d,.]*(e[-+]?\d+)?( ?[%x])?$/.test(s);
  for (const r of cells) {
    console.log(
      r.map((c, i) => numeric(c) ? c.padStart(width[i]) : c.padEnd(width[i])).join("  ")
        .trimEnd(),
    );
  }
}

/** A token's text for display: `"▁Once"`, with control characters escaped. */
export function show(piece: string): string {
  return JSON.stringify(piece);
}

/** One row `r` of a row-major `(rows, cols)` matrix, as a view. */
export function row(m: Float32Array, r: number, cols: number): Float32Array {
  return m.subarray(r * cols, (r + 1) * cols);
}

/**
 * Records the reference's intermediate tensors (runtime/reference.ts `trace`) by
 * `name/layer/pos`, copied, so a step can compare its own values with the engine's.
 */
export class Trace {
  readonly #tensors = new Map<string, Float32Array>();

  /** The callback to pass as `createReference(c, w, { trace })`. */
  readonly record = (name: string, layer: number, pos: number, data: Float32Array): void => {
    this.#tensors.set(`${name}/${layer}/${pos}`, data.slice());
  };

  /** The tensor `name` of layer `layer` (-1 outside the layers) at position `pos`. */
  get(name: string, layer: number, pos: number): Float32Array {
    const t = this.#tensors.get(`${name}/${layer}/${pos}`);
    if (!t) fail(`the reference reported no ${name} for layer ${layer}, position ${pos}`);
    return t;
  }

  /** Rows `pos = 0 .. n-1` of tensor `name` of layer `layer`, stacked: `(n, width)`. */
  rows(name: string, layer: number, n: number): Float32Array {
    const first = this.get(name, layer, 0);
    const out = new Float32Array(n * first.length);
    for (let p = 0; p < n; p++) out.set(this.get(name, layer, p), p * first.length);
    return out;
  }
}
