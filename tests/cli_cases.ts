/**
 * The runner of the table-driven CLI error tests (tests/cli_errors_test.ts,
 * tests/cli_input_errors_test.ts, tests/cli_quantize_test.ts): each {@linkcode Case} is a
 * `gollm` command line run as a subprocess in a fresh temporary directory (`$T`), checked by
 * {@linkcode checkOutcome} (exit status, exactly one `error:` line, no stack trace, within a
 * time bound) and for files left behind; plus the setup helpers that write bad inputs.
 *
 * `GOLLM_CLI_CASES=REGEX` runs only the cases whose name matches (while working on one).
 *
 * @module
 */
import assert from "node:assert/strict";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { parseGguf } from "../formats/gguf/parse.ts";
import { gguf, type GgufTypedValue, writeGguf } from "../formats/gguf/write.ts";
import { ASSETS, ROOT } from "./assets.ts";
import { byteTokenizer, chain, EOS, scriptedWeights, tinyConfig } from "./model_fixtures.ts";

export { ROOT };
const MAIN = `${ROOT}cli/main.ts`;
/** Default per-run bound: a hang fails the case instead of stalling the suite. */
export const TIME_LIMIT_MS = 60_000;

/** One command line and what it must do. */
export interface Case {
  /** What it checks (the test step name). */
  name: string;
  /** Command line after `gollm`; `$T` is replaced by the case's temporary directory. */
  args: string[];
  /** Expected exit status: 0 for a once-fatal input that must now succeed. */
  code: 0 | 1 | 2;
  /** The one `error:` line must match (none is allowed with exit 0). */
  error?: RegExp;
  /** Other stderr lines that are allowed (besides `loaded ...`), e.g. chat's banner. */
  allow?: RegExp;
  /** Text fed to stdin (default: none). */
  stdin?: string;
  /** Working directory (`$T` replaced; default: the repository root). */
  cwd?: string;
  /** Kill the run after this many ms (default {@linkcode TIME_LIMIT_MS}). */
  timeoutMs?: number;
  /** Writes the files the case needs into its temporary directory. */
  setup?: (tmp: string) => Promise<void>;
  /** Loading must not have started (no `loaded ...` line): the value is checked first. */
  beforeLoading?: boolean;
  /** Skip reason when an asset is missing. */
  skip?: string;
}

/** The shipped default model (context_length 256, 4,096 ids). */
export const DEFAULT = `${ROOT}models/default`;
/** stories260K's files (real assets; cases that need them are skipped without). */
export const STORIES_DIR = `${ASSETS}/stories260K`;
const haveStories = await Deno.stat(`${STORIES_DIR}/stories260K.gguf`).then(
  () => true,
  () => false,
);
/** The skip reason of a case that needs stories260K, or undefined when it is there. */
export const NEEDS_STORIES: string | undefined = haveStories
  ? undefined
  : `${STORIES_DIR} is absent (GOLLM_ASSETS)`;

/** A scripted model directory (context 32) with the byte tokenizer. */
export async function scriptedDir(
  dir: string,
  damage?: (w: Map<string, { data: Float32Array }>) => void,
) {
  const c = tinyConfig("llama");
  const weights = scriptedWeights(c, chain("help", EOS));
  damage?.(weights);
  await writeGollmDir(
    { format: "gollm", path: "<test>", config: c, weights, tokenizer: byteTokenizer() },
    dir,
  );
}

/** A copy of an HF fixture directory at `dir` with its JSON files edited in place. */
export async function hfDir(
  dir: string,
  fixture: string,
  edits: Record<string, (json: Record<string, unknown>) => unknown> = {},
) {
  const src = `${ROOT}tests/fixtures/hf/${fixture}`;
  await Deno.mkdir(dir);
  for (const e of Deno.readDirSync(src)) {
    await Deno.copyFile(`${src}/${e.name}`, `${dir}/${e.name}`);
  }
  for (const [file, edit] of Object.entries(edits)) {
    const json = JSON.parse(await Deno.readTextFile(`${dir}/${file}`));
    await Deno.writeTextFile(`${dir}/${file}`, JSON.stringify(edit(json) ?? json));
  }
}

/** The default model at `dir` (weights linked) with `config.yaml` and the tiktoken file edited. */
export async function defaultDir(
  dir: string,
  config: (yaml: string) => string = (y) => y,
  tiktoken: (text: string) => string = (t) => t,
) {
  await Deno.mkdir(dir);
  await Deno.symlink(`${DEFAULT}/model.safetensors`, `${dir}/model.safetensors`);
  await Deno.writeTextFile(
    `${dir}/config.yaml`,
    config(await Deno.readTextFile(`${DEFAULT}/config.yaml`)),
  );
  await Deno.writeTextFile(
    `${dir}/tokenizer.tiktoken`,
    tiktoken(await Deno.readTextFile(`${DEFAULT}/tokenizer.tiktoken`)),
  );
}

/** Rewrites the JSON header of a safetensors file (the data section is kept). */
export async function editSafetensorsHeader(
  path: string,
  edit: (h: Record<string, unknown>) => void,
) {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  edit(header);
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + head.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(bytes.subarray(8 + n), 8 + head.length);
  await Deno.writeFile(path, out);
}

/** stories260K.gguf with u32 metadata values overwritten in place (`llama.context_length`). */
export async function patchedStories(path: string, values: Record<string, number>) {
  const bytes = await Deno.readFile(`${STORIES_DIR}/stories260K.gguf`);
  const g = parseGguf(bytes, "stories260K.gguf");
  for (const [key, value] of Object.entries(values)) {
    assert.equal(typeof g.metadata.get(key), "number", key);
    const k = new TextEncoder().encode(key);
    // A key is stored as u64 length + bytes, then a u32 type, then the value.
    const at = bytes.findIndex((_, i) => k.every((c, j) => bytes[i + j] === c));
    new DataView(bytes.buffer).setUint32(at + k.length + 4, value, true);
  }
  await Deno.writeFile(path, bytes);
}

/** stories260K.gguf rewritten with its token arrays cut to `n` entries (512 rows remain). */
export async function cutTokenizerStories(path: string, n: number) {
  const bytes = await Deno.readFile(`${STORIES_DIR}/stories260K.gguf`);
  const g = parseGguf(bytes, "stories260K.gguf");
  const typed = (key: string, v: unknown): GgufTypedValue => {
    if (key === "tokenizer.ggml.tokens") return gguf.strings((v as string[]).slice(0, n));
    if (key === "tokenizer.ggml.scores") return gguf.f32s((v as number[]).slice(0, n));
    if (key === "tokenizer.ggml.token_type") return gguf.i32s((v as number[]).slice(0, n));
    if (typeof v === "string") return gguf.string(v);
    return key.endsWith("epsilon") ? gguf.f32(v as number) : gguf.u32(v as number);
  };
  await writeGguf(path, {
    metadata: [...g.metadata].map(([k, v]) => [k, typed(k, v)]),
    tensors: g.tensors.map((t) => ({
      name: t.name,
      shape: [...t.ne].reverse(),
      type: t.type,
      data: bytes.slice(t.fileOffset, t.fileOffset + t.nbytes),
    })),
  });
}

/** A FIFO at `path` (nothing ever writes to it: opening it for reading would block). */
export async function mkfifo(path: string) {
  const r = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(r.success, "mkfifo failed");
}

export interface Run {
  code: number;
  stderr: string;
  ms: number;
  /** The time bound it ran under (ms). */
  limit?: number;
}

export async function run(
  args: string[],
  opts: { stdin?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  const t0 = performance.now();
  const limit = opts.timeoutMs ?? TIME_LIMIT_MS;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: opts.cwd ?? ROOT,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), limit);
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    // The child may exit before reading all of it (that is what some cases check).
    await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
    await w.close().catch(() => {});
  }
  const r = await child.output();
  clearTimeout(timer);
  return {
    code: r.code,
    stderr: new TextDecoder().decode(r.stderr),
    ms: performance.now() - t0,
    limit,
  };
}

/** Every path under `dir`, relative, sorted. */
export async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(prefix + e.name);
    if (e.isDirectory) out.push(...await listTree(`${dir}/${e.name}`, `${prefix}${e.name}/`));
  }
  return out.sort();
}

/**
 * Checks one case's outcome: exit status, exactly one `error:` line matching, the usage line
 * for exit 2, nothing else but a `loaded ...` summary, no stack trace.
 */
export function checkOutcome(c: Case, r: Run): void {
  const ctx = `${c.name}: stderr was:\n${r.stderr.slice(0, 2000)}`;
  const limit = r.limit ?? TIME_LIMIT_MS;
  assert.ok(r.ms < limit, `${c.name}: killed after ${limit} ms`);
  assert.equal(r.code, c.code, ctx);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace expected; ${ctx}`);
  const lines = r.stderr.trimEnd().split("\n");
  const errors = lines.filter((l) => l.startsWith("error:"));
  if (c.code === 0) {
    assert.equal(errors.length, 0, `no error line expected; ${ctx}`);
    return;
  }
  assert.equal(errors.length, 1, `exactly one error line expected; ${ctx}`);
  assert.match(errors[0], c.error!, ctx);
  const at = lines.indexOf(errors[0]);
  if (c.code === 2) {
    assert.match(lines[at + 1] ?? "", /^usage: gollm /, `usage line expected; ${ctx}`);
  }
  const rest = lines.filter((_, i) => i !== at && !(c.code === 2 && i === at + 1));
  for (const l of rest) {
    if (!c.allow?.test(l)) assert.match(l, /^loaded /, `unexpected stderr line; ${ctx}`);
  }
  if (c.beforeLoading) assert.equal(rest.length, 0, `the model must not be loaded; ${ctx}`);
}

/**
 * Runs every case (three subprocesses at a time: each is mostly Deno's startup) and reports
 * each as a test step: outcome checked, and the case's directory unchanged.
 */
export async function runCases(t: Deno.TestContext, cases: readonly Case[]): Promise<void> {
  const only = Deno.env.get("GOLLM_CLI_cases");
  const runCase = async (c: Case) => {
    if (c.skip || (only && !new RegExp(only).test(c.name))) return null;
    const tmp = await Deno.makeTempDir({ prefix: "gollm_cli_err_" });
    try {
      await c.setup?.(tmp);
      const before = await listTree(tmp);
      const r = await run(c.args.map((a) => a.replaceAll("$T", tmp)), {
        stdin: c.stdin,
        cwd: c.cwd?.replaceAll("$T", tmp),
        timeoutMs: c.timeoutMs,
      });
      return { r, before, after: await listTree(tmp) };
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  };
  // Three subprocesses at a time: each is mostly Deno's startup.
  const ran: Awaited<ReturnType<typeof runCase>>[] = [];
  let next = 0;
  await Promise.all([0, 1, 2].map(async () => {
    while (next < cases.length) {
      const i = next++;
      ran[i] = await runCase(cases[i]);
    }
  }));
  for (const [i, c] of cases.entries()) {
    const res = ran[i];
    await t.step({
      name: c.name,
      ignore: res === null,
      fn: () => {
        if (res === null) return;
        checkOutcome(c, res.r);
        assert.deepEqual(res.after, res.before, `${c.name}: files were left behind`);
      },
    });
    if (res === null && c.skip) console.log(`skipped '${c.name}': ${c.skip}`);
  }
}
