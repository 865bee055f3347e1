/**
 * `deno task bench:tokenizer`: encoding throughput of gollm's byte-level BPE against the
 * Python `tokenizers` library (HF, Rust core), on the same tokenizer.json and the same text
 * in the same run, for ordinary prose and adversarial text (issue #12 item 13): one letter
 * repeated, base64, minified JavaScript, long digit strings. Each text is 100 kB.
 *
 * Prints MB/s for both, the ratio, and whether the ids are identical. The tokenizer is the
 * real Llama-3 tokenizer.json from $GOLLM_ASSETS when present, else the small byte-level
 * fixture tests/fixtures/hf/gpt2/tokenizer.json. Timing: CPU time of the process (Linux
 * /proc/self/stat; Python `time.process_time`) over repeated runs after one warm-up, so that
 * other processes on a shared machine do not skew the figures; both sides run one thread.
 * Elsewhere than Linux (or without read access to /proc/self, which Deno grants only with
 * --allow-all) the Deno side falls back to wall-clock time, and says so.
 *
 * Usage: deno task bench:tokenizer [--size BYTES]
 *
 * @module
 */
import { loadHfTokenizer } from "../tokenizers/hf_tokenizer.ts";
import { ASSETS, isFile, ROOT } from "../tests/assets.ts";

const sizeArg = Deno.args.indexOf("--size");
const SIZE = sizeArg >= 0 ? Number(Deno.args[sizeArg + 1]) : 100_000;
if (!Number.isInteger(SIZE) || SIZE <= 0) {
  console.error("error: --size must be a positive integer (bytes)");
  Deno.exit(2);
}

const LLAMA3 = `${ASSETS}/tokenizers/llama3/tokenizer.json`;
const TOKENIZER = isFile(LLAMA3) ? LLAMA3 : `${ROOT}tests/fixtures/hf/gpt2/tokenizer.json`;

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function base64Text(n: number): string {
  const r = rng(1);
  const bytes = Uint8Array.from({ length: Math.ceil((n * 3) / 4) }, () => Math.floor(r() * 256));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).slice(0, n);
}

function minifiedJs(n: number): string {
  const r = rng(2);
  const ids = ["a", "b", "c", "e", "t", "n", "r", "o", "i", "s", "_0x3f2a", "$", "fn", "xs"];
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const parts = [
    () => `function ${pick(ids)}(${pick(ids)},${pick(ids)}){return ${pick(ids)}.${pick(ids)}}`,
    () => `var ${pick(ids)}=${Math.floor(r() * 1e6)},${pick(ids)}=[${pick(ids)},${pick(ids)}];`,
    () => `if(${pick(ids)}!==null&&${pick(ids)}.length>${Math.floor(r() * 99)}){${pick(ids)}++}`,
    () => `${pick(ids)}[${pick(ids)}]=${pick(ids)}?"${pick(ids)}":!0;`,
    () =>
      `for(${pick(ids)}=0;${pick(ids)}<${pick(ids)};${pick(ids)}+=2)${pick(ids)}(${pick(ids)});`,
  ];
  let s = "";
  while (s.length < n) s += pick(parts)();
  return s.slice(0, n);
}

function digits(n: number): string {
  const r = rng(3);
  let s = "";
  while (s.length < n) s += String(Math.floor(r() * 1e9)).padStart(9, "0");
  return s.slice(0, n);
}

function prose(n: number): string {
  for (const f of [`${ASSETS}/text/moby-dick/moby-dick.txt`, `${ASSETS}/text/tinystories`]) {
    if (isFile(f)) return Deno.readTextFileSync(f).slice(50_000, 50_000 + n);
  }
  // Without the assets: English-like text from a fixed word list.
  const r = rng(4);
  const words = "the of and a to in is you that it he was for on are as with his they I at be"
    .split(" ");
  let s = "";
  while (s.length < n) s += words[Math.floor(r() * words.length)] + (r() < 0.1 ? ".\n" : " ");
  return s.slice(0, n);
}

const TEXTS: [string, string][] = [
  ["prose", prose(SIZE)],
  ["one letter (a x N)", "a".repeat(SIZE)],
  ["base64", base64Text(SIZE)],
  ["minified JS", minifiedJs(SIZE)],
  ["digits", digits(SIZE)],
];

/** CPU seconds used by this process so far (user + system), or null off Linux. */
function procCpuSeconds(): number | null {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return null;
  }
}
const CLOCK = procCpuSeconds() === null ? "wall clock" : "CPU time";
const cpuSeconds = () => procCpuSeconds() ?? performance.now() / 1000;

/** CPU seconds per call: calls repeated for at least 1 s of CPU (3 calls at least). */
function perCall(fn: () => void): number {
  fn(); // warm-up
  const t0 = cpuSeconds();
  let calls = 0;
  while (calls < 3 || cpuSeconds() - t0 < 1) {
    fn();
    calls++;
  }
  return (cpuSeconds() - t0) / calls;
}

const PY = String.raw`
import json, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
out = []
for text in json.load(sys.stdin):
    ids = tok.encode(text, add_special_tokens=False).ids
    t0, calls = time.process_time(), 0
    while calls < 3 or time.process_time() - t0 < 1:
        tok.encode(text, add_special_tokens=False)
        calls += 1
    out.append({"ids": ids, "seconds": (time.process_time() - t0) / calls})
print(json.dumps(out))
`;

async function pythonRun(): Promise<{ ids: number[]; seconds: number }[] | string> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("python3", {
      args: ["-c", PY, TOKENIZER],
      env: { TOKENIZERS_PARALLELISM: "false", RAYON_NUM_THREADS: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    return `python3 could not start: ${(e as Error).message}`;
  }
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(TEXTS.map(([, t]) => t))));
  await w.close();
  const out = await child.output();
  if (!out.success) {
    return new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "failed";
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const tok = (await loadHfTokenizer(TOKENIZER))!;
console.log(`tokenizer: ${TOKENIZER}`);
console.log(`timing: gollm ${CLOCK}, Python tokenizers CPU time (time.process_time)`);
console.log(
  `load average: ${
    Deno.loadavg().map((x) => x.toFixed(1)).join(" ")
  } on ${navigator.hardwareConcurrency} cores`,
);
const py = await pythonRun();
if (typeof py === "string") console.log(`Python tokenizers: skipped (${py})`);
const mb = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(2);
const rows = [["text", "kB", "gollm MB/s", "tokenizers MB/s", "gollm / tokenizers", "ids equal"]];
TEXTS.forEach(([name, text], i) => {
  const bytes = new TextEncoder().encode(text).length;
  let ids: number[] = [];
  const s = perCall(() => {
    ids = tok.encode(text, { bos: false });
  });
  const p = typeof py === "string" ? null : py[i];
  const same = p === null ? "-" : JSON.stringify(ids) === JSON.stringify(p.ids) ? "yes" : "NO";
  rows.push([
    name,
    (bytes / 1000).toFixed(0),
    mb(bytes, s),
    p ? mb(bytes, p.seconds) : "-",
    p ? (p.seconds / s).toFixed(2) : "-",
    same,
  ]);
});
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((v, c) => v.padStart(widths[c])).join("  "));
