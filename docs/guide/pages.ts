/**
 * The pages of the guide and the programs behind them: run a step, split what it prints into
 * sections, and copy the sections (and the code regions of its source) into its page, or
 * compare them with what the page shows.
 *
 * In a page, a block is tied to its source by an HTML comment on the line before its fence:
 *
 * - `<!-- output: TITLE -->`: the lines the step printed under `== TITLE ==` (without that line);
 * - `<!-- code: REGION -->`: the lines between `// #region REGION` and `// #endregion REGION`
 *   of the step's program.
 *
 * Lines that start with `~` are figures measured on the machine that ran the step; they are
 * compared by their label (the text before the first `:`) only.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { ASSETS } from "./lib.ts";

/** This directory, with a trailing slash. */
export const GUIDE: string = fileURLToPath(new URL("./", import.meta.url));

/** The assets the pages were captured with; without any of them a page cannot match. */
export const CAPTURE_ASSETS: readonly string[] = [
  "stories260K/stories260K.bin",
  "stories260K/stories260K.gguf",
  "stories260K/stories260K.md",
  "stories260K/tok512.bin",
  "tokenizers/gpt2/encoder.json",
  "tokenizers/llama3/tokenizer.json",
  "text/tinystories/tinystories_train_head_944KB.txt",
].map((p) => `${ASSETS}/${p}`);

/** The step programs, in order: `01_tokens`, `02_embeddings`, ... (no extension). */
export function steps(): string[] {
  return [...Deno.readDirSync(GUIDE)]
    .map((e) => e.name)
    .filter((n) => /^\d\d_[a-z0-9_]+\.ts$/.test(n))
    .map((n) => n.slice(0, -3))
    .sort();
}

/** What one run of a step printed. */
export interface StepRun {
  /** The step, e.g. `03_attention`. */
  step: string;
  /** Exit status. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** Wall time in seconds. */
  seconds: number;
}

/** Runs `docs/guide/<step>.ts` in its own Deno process. */
export async function runStep(step: string): Promise<StepRun> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${GUIDE}${step}.ts`],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return {
    step,
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The sections of a step's output: title → its lines (the `== title ==` line left out). */
export function sections(stdout: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of stdout.replace(/\n$/, "").split("\n")) {
    const m = /^== (.+) ==$/.exec(line);
    if (m) out.set(m[1], current = []);
    else if (current) current.push(line);
    else if (line !== "") {
      throw new Error(`output before the first section: ${JSON.stringify(line)}`);
    }
  }
  // Drop the blank line printed between sections.
  for (const lines of out.values()) while (lines.at(-1) === "") lines.pop();
  return out;
}

/** The code regions of a source file: name → its lines (the marker lines left out). */
export function regions(source: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const lines = source.split("\n");
  lines.forEach((line, i) => {
    const m = /^\/\/ #region (\S+)$/.exec(line);
    if (!m) return;
    const end = lines.indexOf(`// #endregion ${m[1]}`, i);
    if (end < 0) throw new Error(`region ${m[1]} has no #endregion`);
    out.set(m[1], lines.slice(i + 1, end));
  });
  return out;
}

/** A block of a page tied to a section or a region. */
export interface PageBlock {
  /** `output` (a section of the step's output) or `code` (a region of its source). */
  kind: "output" | "code";
  /** The section title or region name. */
  name: string;
  /** Index of the first content line (after the opening fence) in the page's lines. */
  start: number;
  /** Index of the closing fence. */
  end: number;
}

/** The tied blocks of a page, in order. */
export function blocks(page: string): PageBlock[] {
  const lines = page.split("\n");
  const out: PageBlock[] = [];
  lines.forEach((line, i) => {
    const m = /^<!-- (output|code): (.+?) -->$/.exec(line);
    if (!m) return;
    let fence = i + 1;
    while (lines[fence] === "") fence++; // deno fmt puts a blank line after the comment
    if (!/^```/.test(lines[fence] ?? "")) {
      throw new Error(`line ${i + 1}: "${line}" is not followed by a fenced block`);
    }
    const end = lines.indexOf("```", fence + 1);
    if (end < 0) throw new Error(`line ${fence + 1}: the block has no closing fence`);
    out.push({ kind: m[1] as "output" | "code", name: m[2], start: fence + 1, end });
  });
  return out;
}

/** The comparison key of a line: a measured line (`~ label: value`) by its label only. */
function key(line: string): string {
  const l = line.trimEnd();
  return l.startsWith("~") ? l.split(":")[0] : l;
}

/** What a page should show: the content of each tied block, from the step's run and source. */
function wanted(b: PageBlock, out: Map<string, string[]>, code: Map<string, string[]>): string[] {
  const lines = (b.kind === "output" ? out : code).get(b.name);
  if (!lines) throw new Error(`the page shows ${b.kind} '${b.name}', which the step does not have`);
  return lines;
}

/**
 * Compares a page with a run of its step and its source: one message per block that
 * differs (naming the block and the first differing line), or for a section the page does
 * not show. Empty when the page is up to date.
 */
export function compare(page: string, stdout: string, source: string): string[] {
  const out = sections(stdout), code = regions(source);
  const problems: string[] = [];
  const lines = page.split("\n");
  const shown = new Set<string>();
  for (const b of blocks(page)) {
    if (b.kind === "output") shown.add(b.name);
    let want: string[];
    try {
      want = wanted(b, out, code);
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    const have = lines.slice(b.start, b.end);
    const n = Math.max(want.length, have.length);
    for (let i = 0; i < n; i++) {
      const shows = have[i] ?? "<end of block>", gives = want[i] ?? "<end of block>";
      if (key(shows) !== key(gives)) {
        const where = `${b.kind} '${b.name}', line ${i + 1}`;
        const what = `the page shows ${JSON.stringify(shows)}, ` +
          `the step gives ${JSON.stringify(gives)}`;
        problems.push(`${where}: ${what}`);
        break;
      }
    }
  }
  for (const title of out.keys()) {
    if (!shown.has(title)) problems.push(`the page does not show the section '${title}'`);
  }
  return problems;
}

/** The page with every tied block replaced by what the step printed and its source holds. */
export function refresh(page: string, stdout: string, source: string): string {
  const out = sections(stdout), code = regions(source);
  const lines = page.split("\n");
  for (const b of blocks(page).reverse()) {
    lines.splice(b.start, b.end - b.start, ...wanted(b, out, code));
  }
  return lines.join("\n");
}
