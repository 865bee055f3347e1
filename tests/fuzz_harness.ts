/**
 * Fuzz harness for gollm's readers: mutates a real or shipped file many times and loads each
 * mutant in a SUBPROCESS with a time and memory bound, asserting that every outcome is
 * success or a typed `GollmError` whose message is one line and names the file.
 *
 * Use ({@linkcode fuzz}):
 * ```ts ignore
 * const report = await fuzz({
 *   name: "gguf",
 *   base: `${ASSETS}/stories260K/stories260K.gguf`,
 *   mutations: ["bitflip", "overwrite", "truncate", "insert", "field"],
 *   fields: ggufFields,
 *   loader: { module: "formats/load.ts", fn: "loadCheckpoint", args: ["{path}"] },
 * }, { seed: 260, cases: 120 });
 * assertClean(report); // throws, listing every failing case with its seed and case number
 * ```
 *
 * - `base` is a file, or a directory whose `file` is mutated (its other entries are
 *   symlinked into each case's directory).
 * - `loader` names a module (relative to the repository root) and an exported function,
 *   called with `args` in which `{path}` is the case's file (or directory, for a directory
 *   base), `{dir}` its directory and `{name}` its base name. It may return a promise.
 * - Mutations ({@linkcode Mutation}): `bitflip` (1–8 bits), `overwrite` (0, 0xff,
 *   0x7fffffff, -1, 2^31, 2^63, NaN and Inf bit patterns at a random offset), `truncate`,
 *   `insert` (1–64 random bytes), `field` (an interesting value into a header field that
 *   `fields` locates), `json` / `yaml` (replace a value with an extreme or a wrong type, or
 *   delete a key, then re-serialise), `stjson` (`json` on a safetensors header, including
 *   the JSON inside `__metadata__` strings; length prefix fixed), `lines` (a text file's line
 *   deleted, duplicated, swapped with another, its last field set to an extreme number, or
 *   replaced by one of `target.lines`). `json` / `yaml` / `stjson` also draw from
 *   `target.values` (e.g. pathological regex patterns). Offsets favour the first `hot` bytes
 *   (headers).
 * - Case `i` of seed `s` is mutated by a PRNG seeded from `(s, i)` alone, so one case
 *   reproduces by itself: `fuzz(target, { seed: s, cases: i + 1, only: i })`.
 * - Each batch of cases runs in one `deno run` child (`--v8-flags=--max-old-space-size`);
 *   the parent kills it when a case runs longer than `timeoutMs` or its resident memory
 *   passes `maxRssMb` (read from /proc/<pid>/status every 20 ms; `prlimit --as` cannot be
 *   used because V8 reserves tens of GB of address space), records the case as failed and
 *   continues with the next in a new child.
 *
 * The tokenizer engineer's readers (tokenizer.json, tiktoken, tokenizer.bin) plug in the same
 * way: a `base`, a `loader` and the mutations that fit.
 *
 * @module
 */
import yaml from "js-yaml";
import { ROOT } from "./assets.ts";

/** Mutation strategies (see the module doc). */
export type Mutation =
  | "bitflip"
  | "overwrite"
  | "truncate"
  | "insert"
  | "field"
  | "json"
  | "yaml"
  | "stjson"
  | "lines";

/** What to fuzz. */
export interface FuzzTarget {
  /** Name in reports, e.g. `gguf`. */
  name: string;
  /** The base file, or a directory holding `file`. */
  base: string;
  /** For a directory base: the entry that is mutated (others are symlinked). */
  file?: string;
  /** Strategies, drawn uniformly per case. */
  mutations: Mutation[];
  /** Bytes at the start (headers) that byte-level mutations favour; default 4096. */
  hot?: number;
  /** For `field`: the header fields of the base bytes as `[offset, width]` (width 1, 2, 4, 8). */
  fields?: (bytes: Uint8Array) => [number, number][];
  /** For `json` / `yaml` / `stjson`: keys whose values are picked half of the time. */
  keys?: readonly string[];
  /** For `json` / `yaml` / `stjson`: extra values drawn half of the time (target-specific). */
  values?: readonly unknown[];
  /** For `lines`: whole lines that replace a line a third of the time. */
  lines?: readonly string[];
  /** The call that loads a case (see the module doc). */
  loader: { module: string; fn: string; args?: string[] };
}

/** Limits and size of a run. */
export interface FuzzOptions {
  /** PRNG seed of the run. */
  seed: number;
  /** Number of cases (scaled by env `GOLLM_FUZZ_SCALE`, default 1). */
  cases: number;
  /** Run only this case number (to reproduce one). */
  only?: number;
  /** Per-case wall-clock bound in ms (default 30000: a shared CI machine can be 10× slow). */
  timeoutMs?: number;
  /** Resident-memory bound of the child in MiB (default 1536). */
  maxRssMb?: number;
  /** V8 heap bound of the child in MiB (default 1024). */
  heapMb?: number;
  /** Cases per child process (default 40). */
  batch?: number;
}

/** One case's outcome. */
export interface CaseResult {
  /** Case number. */
  i: number;
  /** The mutation applied, e.g. `field @16 w8 = 0xffffffffffffffff`. */
  mutation: string;
  /** `ok` (loaded), `rejected` (a typed one-line GollmError naming the file) or `fail`. */
  outcome: "ok" | "rejected" | "fail";
  /** Error name and message, or why the case failed (hang, memory, crash). */
  detail: string;
  /** Wall-clock time of the load in ms. */
  ms: number;
}

/** The result of {@linkcode fuzz}. */
export interface FuzzReport {
  /** Target name. */
  name: string;
  /** Seed of the run. */
  seed: number;
  /** Every case, in order. */
  results: CaseResult[];
}

/** xorshift32 seeded from (seed, case): identical on every machine. */
export function rng(seed: number, i: number): (n: number) => number {
  let s = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) | 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  for (let k = 0; k < 4; k++) next();
  return (n: number) => next() % n;
}

const U8 = [0, 0xff, 0x7f, 0x80, 1];
const U32 = [0, 1, 0xffffffff, 0x7fffffff, 0x80000000, 0x7fc00000, 0x7f800000, 0xff800000, 2];
const U64 = [
  0n,
  1n,
  0xffffffffffffffffn,
  0x7fffffffffffffffn,
  0x80000000n,
  0x100000000n,
  0x7ff8000000000000n,
  2n ** 53n + 1n,
];

function putValue(bytes: Uint8Array, at: number, width: number, r: (n: number) => number): string {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (at + width > bytes.length) return "skip";
  if (width === 8) {
    const v = U64[r(U64.length)];
    dv.setBigUint64(at, v, true);
    return `0x${v.toString(16)}`;
  }
  if (width === 4) {
    const v = U32[r(U32.length)];
    dv.setUint32(at, v, true);
    return `0x${v.toString(16)}`;
  }
  if (width === 2) {
    const v = [0, 0xffff, 0x7fff, 0x8000, 0x7e00][r(5)];
    dv.setUint16(at, v, true);
    return `0x${v.toString(16)}`;
  }
  const v = U8[r(U8.length)];
  bytes[at] = v;
  return `0x${v.toString(16)}`;
}

/** Extreme numbers, used for 2 of 3 mutations of a numeric value. */
const NUMBERS = [0, -1, 1.5, 60000, 1e8, 2147483647, 2147483648, 4294967296, 2 ** 53 + 2, 1e300];

/** Extreme and wrong-typed values for `json` / `yaml` mutations. */
const EXTREMES: unknown[] = [
  0,
  -1,
  1.5,
  1e8,
  2147483647,
  2147483648,
  4294967296,
  2 ** 53 + 2,
  1e300,
  -1e300,
  "",
  "toString",
  "__proto__",
  "x".repeat(5000),
  null,
  true,
  [],
  {},
  [1, 2, 3],
  { a: 1 },
];

/** Every [container, key] of a parsed JSON/YAML value (at most `cap` of them). */
function slots(root: unknown, cap = 5000): [Record<string, unknown> | unknown[], string][] {
  const out: [Record<string, unknown> | unknown[], string][] = [];
  const walk = (v: unknown) => {
    if (out.length >= cap || v === null || typeof v !== "object") return;
    for (const k of Object.keys(v as object)) {
      out.push([v as Record<string, unknown>, k]);
      walk((v as Record<string, unknown>)[k]);
    }
  };
  walk(root);
  return out;
}

/** Replaces (or deletes) one value of a parsed document; returns what was done. */
function mutateValue(
  doc: unknown,
  r: (n: number) => number,
  keys: readonly string[] = [],
  values: readonly unknown[] = [],
): string {
  const all = slots(doc);
  if (all.length === 0) return "empty";
  const focus = all.filter(([, k]) => keys.includes(k));
  const [c, k] = focus.length > 0 && r(2) === 0 ? focus[r(focus.length)] : all[r(all.length)];
  if (!Array.isArray(c) && r(6) === 0) {
    delete c[k];
    return `delete ${k.slice(0, 40)}`;
  }
  const old = (c as Record<string, unknown>)[k];
  const v = typeof old === "number" && r(3) !== 0
    ? NUMBERS[r(NUMBERS.length)]
    : values.length > 0 && r(2) === 0
    ? values[r(values.length)]
    : EXTREMES[r(EXTREMES.length)];
  (c as Record<string, unknown>)[k] = structuredClone(v);
  const shown = typeof v === "string" && v.length > 20 ? `"x"*${v.length}` : JSON.stringify(v);
  return `${k.slice(0, 40)} = ${shown}`;
}

/**
 * Case `i`'s bytes: the base mutated by one strategy drawn from `target.mutations`.
 *
 * @returns The bytes and a description of the mutation.
 */
export function mutate(
  base: Uint8Array,
  target: Pick<FuzzTarget, "mutations" | "hot" | "fields" | "keys" | "values" | "lines">,
  seed: number,
  i: number,
): { bytes: Uint8Array; mutation: string } {
  const r = rng(seed, i);
  const kind = target.mutations[r(target.mutations.length)];
  const hot = Math.min(target.hot ?? 4096, base.length);
  const at = (n: number) => (r(4) === 0 || hot === 0 ? r(Math.max(1, n)) : r(Math.max(1, hot)));
  switch (kind) {
    case "bitflip": {
      const bytes = base.slice();
      const n = 1 + r(8);
      const where: number[] = [];
      for (let k = 0; k < n && bytes.length > 0; k++) {
        const p = at(bytes.length);
        bytes[p] ^= 1 << r(8);
        where.push(p);
      }
      return { bytes, mutation: `bitflip @${where.join(",")}` };
    }
    case "overwrite": {
      const bytes = base.slice();
      const width = [1, 4, 8][r(3)];
      const p = at(bytes.length);
      return { bytes, mutation: `overwrite @${p} w${width} = ${putValue(bytes, p, width, r)}` };
    }
    case "truncate": {
      const n = at(base.length);
      return { bytes: base.slice(0, n), mutation: `truncate to ${n}` };
    }
    case "insert": {
      const p = at(base.length), n = 1 + r(64);
      const ins = Uint8Array.from({ length: n }, () => r(256));
      const bytes = new Uint8Array(base.length + n);
      bytes.set(base.subarray(0, p));
      bytes.set(ins, p);
      bytes.set(base.subarray(p), p + n);
      return { bytes, mutation: `insert ${n} @${p}` };
    }
    case "field": {
      const fields = target.fields?.(base) ?? [];
      if (fields.length === 0) return { bytes: base.slice(), mutation: "field (none)" };
      const [p, width] = fields[r(fields.length)];
      const bytes = base.slice();
      return { bytes, mutation: `field @${p} w${width} = ${putValue(bytes, p, width, r)}` };
    }
    case "json":
    case "yaml": {
      const text = new TextDecoder().decode(base);
      const doc = kind === "json" ? JSON.parse(text) : yaml.load(text);
      const what = mutateValue(doc, r, target.keys, target.values);
      const out = kind === "json" ? JSON.stringify(doc, null, 2) : yaml.dump(doc);
      return { bytes: new TextEncoder().encode(out), mutation: `${kind} ${what}` };
    }
    case "stjson": {
      const n = Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));
      const doc = JSON.parse(new TextDecoder().decode(base.subarray(8, 8 + n)));
      // __metadata__ values that hold JSON (gollm's `generation`, `extra_eos_ids`) are
      // mutated inside, then stored as strings again.
      const meta = doc.__metadata__ as Record<string, unknown> | undefined;
      const nested: string[] = [];
      for (const [k, v] of Object.entries(meta ?? {})) {
        if (typeof v !== "string" || !/^[[{]/.test(v)) continue;
        try {
          meta![k] = JSON.parse(v);
          nested.push(k);
        } catch { /* not JSON: stays a string */ }
      }
      const what = mutateValue(doc, r, target.keys, target.values);
      for (const k of nested) if (meta![k] !== undefined) meta![k] = JSON.stringify(meta![k]);
      const head = new TextEncoder().encode(JSON.stringify(doc));
      const bytes = new Uint8Array(8 + head.length + base.length - 8 - n);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(head.length), true);
      bytes.set(head, 8);
      bytes.set(base.subarray(8 + n), 8 + head.length);
      return { bytes, mutation: `stjson ${what}` };
    }
    case "lines": {
      const lines = new TextDecoder().decode(base).split("\n");
      const what = mutateLine(lines, r, target.lines ?? [], hot);
      return { bytes: new TextEncoder().encode(lines.join("\n")), mutation: `lines ${what}` };
    }
  }
}

/**
 * Edits one line of `lines` in place: delete, duplicate, swap with another, set its last
 * space-separated field to an extreme number, or replace it by one of `replacements`.
 * Lines that start within the first `hot` bytes are picked 3 times in 4.
 */
function mutateLine(
  lines: string[],
  r: (n: number) => number,
  replacements: readonly string[],
  hot: number,
): string {
  let hotLines = 0;
  for (let bytes = 0; hotLines < lines.length && bytes < hot; hotLines++) {
    bytes += lines[hotLines].length + 1;
  }
  const pick = () => (r(4) !== 0 && hotLines > 0 ? r(hotLines) : r(lines.length));
  const k = pick();
  const show = (s: string) => JSON.stringify(s.length > 50 ? s.slice(0, 50) + "…" : s);
  const op = replacements.length > 0 && r(3) === 0 ? 4 : r(4);
  switch (op) {
    case 0:
      return `delete ${k + 1} ${show(lines.splice(k, 1)[0])}`;
    case 1:
      lines.splice(k, 0, lines[k]);
      return `duplicate ${k + 1}`;
    case 2: {
      const j = r(lines.length);
      [lines[k], lines[j]] = [lines[j], lines[k]];
      return `swap ${k + 1} ${j + 1}`;
    }
    case 3: {
      const sp = lines[k].lastIndexOf(" ");
      const n = [...NUMBERS, -5, "1e3", "0x10", ""][r(NUMBERS.length + 4)];
      lines[k] = `${sp < 0 ? lines[k] : lines[k].slice(0, sp)} ${n}`;
      return `line ${k + 1} = ${show(lines[k])}`;
    }
    default:
      lines[k] = replacements[r(replacements.length)];
      return `line ${k + 1} = ${show(lines[k])}`;
  }
}

/**
 * The header fields of a GGUF file (ggml/docs/gguf.md): version, tensor and KV counts, each
 * scalar value, string and array length, and each tensor's n_dims, ne, type and offset.
 *
 * @example
 * ```ts ignore
 * const fields = ggufFields(await Deno.readFile("stories260K.gguf")); // [[4, 4], [8, 8], ...]
 * ```
 */
export function ggufFields(b: Uint8Array): [number, number][] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: [number, number][] = [[4, 4], [8, 8], [16, 8]];
  const SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1 };
  Object.assign(SIZE, { 10: 8, 11: 8, 12: 8 });
  let p = 24;
  const u64 = (at: number) => Number(dv.getBigUint64(at, true));
  const value = (type: number, top: boolean) => {
    if (SIZE[type] !== undefined) {
      if (top) out.push([p, SIZE[type]]);
      p += SIZE[type];
    } else if (type === 8) {
      if (top) out.push([p, 8]);
      p += 8 + u64(p);
    } else if (type === 9) {
      const elem = dv.getUint32(p, true);
      out.push([p, 4], [p + 4, 8]);
      const n = u64(p + 4);
      p += 12;
      for (let k = 0; k < n; k++) value(elem, false);
    } else throw new Error(`ggufFields: value type ${type}`);
  };
  try {
    const nTensors = u64(8), nKv = u64(16);
    for (let k = 0; k < nKv; k++) {
      p += 8 + u64(p);
      const type = dv.getUint32(p, true);
      out.push([p, 4]);
      p += 4;
      value(type, true);
    }
    for (let t = 0; t < nTensors; t++) {
      p += 8 + u64(p);
      const nd = dv.getUint32(p, true);
      out.push([p, 4]);
      p += 4;
      for (let d = 0; d < nd; d++, p += 8) out.push([p, 8]);
      out.push([p, 4], [p + 4, 8]);
      p += 12;
    }
  } catch {
    // A header the walker cannot follow: the fields found so far.
  }
  return out;
}

/** The int32 header fields of a llama2.c checkpoint (v0: the 7 ints; v1: magic, version, ints, flag). */
export function llama2cFields(b: Uint8Array): [number, number][] {
  const v1 = b.length >= 4 &&
    new DataView(b.buffer, b.byteOffset).getUint32(0, true) === 0x616b3432;
  const ints = Array.from({ length: 7 }, (_, k): [number, number] => [(v1 ? 8 : 0) + 4 * k, 4]);
  return v1 ? [[0, 4], [4, 4], ...ints, [36, 1]] : ints;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Writes case `i` (a file, or a directory with the mutated entry) and returns its path. */
async function writeCase(
  target: FuzzTarget,
  base: Uint8Array,
  dir: string,
  seed: number,
  i: number,
): Promise<{ path: string; mutation: string }> {
  const { bytes, mutation } = mutate(base, target, seed, i);
  if (target.file === undefined) {
    const name = target.base.split("/").pop()!;
    const path = `${dir}/case${i}-${name}`;
    await Deno.writeFile(path, bytes);
    return { path, mutation };
  }
  const path = `${dir}/case${i}`;
  await Deno.mkdir(path);
  for (const e of Deno.readDirSync(target.base)) {
    if (e.name !== target.file) await Deno.symlink(`${target.base}/${e.name}`, `${path}/${e.name}`);
  }
  await Deno.writeFile(`${path}/${target.file}`, bytes);
  return { path, mutation };
}

/** Runs one child over `cases` (in order); returns results, stopping at a hang or crash. */
async function runChild(
  target: FuzzTarget,
  cases: { i: number; path: string; mutation: string }[],
  opts: Required<Pick<FuzzOptions, "timeoutMs" | "maxRssMb" | "heapMb">>,
): Promise<CaseResult[]> {
  const spec = JSON.stringify({ loader: target.loader, cases });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      `--v8-flags=--max-old-space-size=${opts.heapMb}`,
      new URL(import.meta.url).pathname,
      "--child",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(spec));
  await w.close();
  const stderr = new Response(child.stderr).text();
  const results: CaseResult[] = [];
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let current = -1, started = performance.now(), killed = "";
  const watchdog = setInterval(() => {
    if (current < 0 || killed) return;
    const ms = performance.now() - started;
    const rss = rssMb(child.pid);
    if (ms > opts.timeoutMs) killed = `no result after ${opts.timeoutMs} ms (hang)`;
    else if (rss > opts.maxRssMb) {
      killed = `resident memory ${rss.toFixed(0)} MiB > ${opts.maxRssMb}`;
    }
    if (killed) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
  }, 20);
  try {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("start ")) {
          current = Number(line.slice(6));
          started = performance.now();
        } else if (line.startsWith("end ")) {
          const res = JSON.parse(line.slice(4)) as CaseResult;
          results.push(res);
          current = -1;
        }
      }
    }
  } finally {
    clearInterval(watchdog);
  }
  const status = await child.status;
  const err = (await stderr).trim().split("\n").slice(-3).join(" | ");
  if (results.length < cases.length) {
    const c = cases[results.length];
    const why = killed ||
      `child exited with code ${status.code}${status.signal ? ` (${status.signal})` : ""}: ${err}`;
    results.push({ i: c.i, mutation: c.mutation, outcome: "fail", detail: why, ms: 0 });
  }
  return results;
}

/**
 * Mutates `target.base` `options.cases` times and loads each mutant in a bounded
 * subprocess (see the module doc).
 *
 * @returns One result per case; {@linkcode assertClean} checks them.
 */
export async function fuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const opts = {
    timeoutMs: options.timeoutMs ?? 30_000,
    maxRssMb: options.maxRssMb ?? 1536,
    heapMb: options.heapMb ?? 1024,
  };
  const scale = Number(Deno.env.get("GOLLM_FUZZ_SCALE") ?? "1") || 1;
  const total = Math.max(1, Math.round(options.cases * scale));
  const batch = options.batch ?? 40;
  const base = await Deno.readFile(target.file ? `${target.base}/${target.file}` : target.base);
  const tmp = await Deno.makeTempDir({ prefix: `gollm-fuzz-${target.name}-` });
  const results: CaseResult[] = [];
  try {
    const todo = options.only !== undefined
      ? [options.only]
      : Array.from({ length: total }, (_, i) => i);
    for (let b = 0; b < todo.length; b += batch) {
      const cases = [];
      for (const i of todo.slice(b, b + batch)) {
        cases.push({ i, ...(await writeCase(target, base, tmp, options.seed, i)) });
      }
      let rest = cases;
      while (rest.length > 0) {
        const got = await runChild(target, rest, opts);
        results.push(...got);
        rest = rest.slice(got.length);
      }
      for (const c of cases) await Deno.remove(c.path, { recursive: true }).catch(() => {});
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return { name: target.name, seed: options.seed, results };
}

/**
 * Prints one summary line (case count, loaded, rejected, slowest case) and throws listing
 * every failed case (`seed S case I (mutation): why`) when there is one.
 *
 * @param report What {@linkcode fuzz} returned.
 * @param minRejected The least number of rejected cases expected (shows the mutations bite).
 */
export function assertClean(report: FuzzReport, minRejected = 1): void {
  const n = (o: CaseResult["outcome"]) => report.results.filter((r) => r.outcome === o).length;
  const slow = report.results.reduce((a, r) => (r.ms > a.ms ? r : a), report.results[0]);
  console.log(
    `fuzz ${report.name}: ${report.results.length} cases (seed ${report.seed}): ` +
      `${n("ok")} loaded, ${n("rejected")} rejected with a GollmError, ${n("fail")} failed; ` +
      `slowest case ${slow.i} ${slow.ms.toFixed(0)} ms (${slow.mutation})`,
  );
  const fails = report.results.filter((r) => r.outcome === "fail");
  if (fails.length > 0) {
    throw new Error(
      `fuzz ${report.name}: ${fails.length} of ${report.results.length} cases failed:\n` +
        fails.map((f) => `  seed ${report.seed} case ${f.i} (${f.mutation}): ${f.detail}`)
          .join("\n"),
    );
  }
  if (n("rejected") < minRejected) {
    throw new Error(
      `fuzz ${report.name}: only ${n("rejected")} cases rejected, expected ≥ ${minRejected}`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Child: loads each case, prints `start <i>` and `end <json>` lines.

async function child(): Promise<void> {
  const spec = JSON.parse(await new Response(Deno.stdin.readable).text()) as {
    loader: FuzzTarget["loader"];
    cases: { i: number; path: string; mutation: string }[];
  };
  const { GollmError } = await import("../core/errors.ts");
  const mod = await import(new URL(spec.loader.module, `file://${ROOT}`).href);
  const fn = mod[spec.loader.fn] as (...a: unknown[]) => unknown;
  const enc = new TextEncoder();
  const say = (s: string) => Deno.stdout.writeSync(enc.encode(s + "\n"));
  for (const c of spec.cases) {
    const dir = c.path.slice(0, c.path.lastIndexOf("/")) || "/";
    const name = c.path.slice(c.path.lastIndexOf("/") + 1);
    const args = (spec.loader.args ?? ["{path}"]).map((a) =>
      a.replace("{path}", c.path).replace("{dir}", dir).replace("{name}", name)
    );
    say(`start ${c.i}`);
    const t0 = performance.now();
    let outcome: CaseResult["outcome"] = "ok", detail = "";
    try {
      await fn(...args);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      detail = `${e instanceof Error ? e.name : typeof e}: ${msg.slice(0, 300)}`;
      if (!(e instanceof GollmError)) {
        outcome = "fail";
        detail = `not a GollmError: ${detail}`;
      } else if (msg.includes("\n")) {
        outcome = "fail";
        detail = `multi-line message: ${JSON.stringify(msg.slice(0, 300))}`;
      } else if (!msg.includes(c.path)) {
        outcome = "fail";
        detail = `message does not name ${c.path}: ${msg.slice(0, 300)}`;
      } else outcome = "rejected";
    }
    const ms = performance.now() - t0;
    say(`end ${JSON.stringify({ i: c.i, mutation: c.mutation, outcome, detail, ms })}`);
  }
}

if (import.meta.main && Deno.args[0] === "--child") await child();
