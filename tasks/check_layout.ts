/**
 * The layout check of `deno task check` (docs/DESIGN.md "Layout"): fails when
 *
 * - a module imports from a top-level folder that sits later in the data flow
 *   (`core` → `tokenizers` → `formats` → `codegen` → `runtime` → `server` → `cli`; `codegen`
 *   sees only `core`), which is also what rules out an import cycle between folders;
 * - a hand-written source file (`.ts`, `.py`) is longer than {@linkcode MAX_LINES} lines.
 *
 * Generated code (`generated/`), committed fixtures (`tests/fixtures/`) and the shipped model
 * are not checked. Test files (`*_test.ts`) are checked for length only: nothing imports them, so
 * they cannot close a cycle, and a parity test beside a reader may run the reference forward. Usage: `deno run --allow-read tasks/check_layout.ts` (exit 1 with one
 * line per problem).
 *
 * @module
 */

/** Longest hand-written source file, in lines. */
export const MAX_LINES = 700;

/**
 * The folders of the library in data-flow order, each with the folders it may import from.
 * Folders not listed here (tasks/, bench/, tests/, docs/) are tooling: they may import
 * anything, and nothing in the library may import them.
 */
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  core: [],
  tokenizers: ["core"],
  formats: ["core", "tokenizers"],
  codegen: ["core"],
  runtime: ["core", "tokenizers", "formats", "codegen"],
  server: ["core", "tokenizers", "formats", "codegen", "runtime"],
  cli: ["core", "tokenizers", "formats", "codegen", "runtime", "server"],
};

const SKIP = [
  /^generated\//,
  /^tests\/fixtures\//,
  /^models\//,
  /^\.venv\//,
  /(^|\/)node_modules\//,
];

/** One problem found: the file, and what is wrong. */
export interface LayoutProblem {
  /** Path relative to the repository root. */
  file: string;
  /** One line: the rule broken, expected vs actual. */
  problem: string;
}

/** Relative import specifiers of a TypeScript source (static and dynamic imports, re-exports). */
function importsOf(source: string): string[] {
  const out: string[] = [];
  const re =
    /(?:^|[\s;])(?:import|export)\s[^"'`;]*?from\s*["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  // Doc examples in JSDoc are not imports of the module itself.
  const code = source.replace(/\/\*\*[\s\S]*?\*\//g, "");
  for (const m of code.matchAll(re)) out.push(m[1] ?? m[2]);
  return out;
}

/** Normalises `a/b/../c` to `a/c`. */
function normalise(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== "." && p !== "") parts.push(p);
  }
  return parts.join("/");
}

/**
 * Checks the layout of the files given (paths relative to the root, with their text).
 *
 * @param files Map from relative path (`runtime/model.ts`) to source text.
 * @returns Every problem found, in path order (empty when the layout is clean).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLayout } from "./check_layout.ts";
 * const files = new Map([
 *   ["codegen/plan.ts", 'import { x } from "../runtime/model.ts";\n'],
 *   ["runtime/model.ts", 'import { y } from "../codegen/plan.ts";\n'],
 * ]);
 * const problems = checkLayout(files);
 * assert.equal(problems.length, 1);
 * assert.match(problems[0].problem, /codegen\/ may not import runtime\//);
 * ```
 */
export function checkLayout(files: ReadonlyMap<string, string>): LayoutProblem[] {
  const problems: LayoutProblem[] = [];
  for (const [file, text] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    if (SKIP.some((re) => re.test(file))) continue;
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > MAX_LINES) {
      problems.push({
        file,
        problem: `${lines} lines, more than ${MAX_LINES}: split it by concern`,
      });
    }
    if (!file.endsWith(".ts")) continue;
    const folder = file.includes("/") ? file.slice(0, file.indexOf("/")) : "";
    const allowed = ALLOWED[folder];
    // Tooling, the root (mod.ts) and tests may import anything.
    if (!allowed || file.endsWith("_test.ts")) continue;
    const dir = file.slice(0, file.lastIndexOf("/"));
    for (const spec of importsOf(text)) {
      const target = normalise(`${dir}/${spec}`);
      const to = target.includes("/") ? target.slice(0, target.indexOf("/")) : "";
      if (to === folder) continue;
      if (!allowed.includes(to)) {
        problems.push({
          file,
          problem: `${folder}/ may not import ${to || "the root"}/ (${spec}); ` +
            `${folder}/ may import ${
              allowed.length ? allowed.map((a) => a + "/").join(", ") : "nothing outside core/"
            }`,
        });
      }
    }
  }
  return problems;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname;
  const git = new Deno.Command("git", { args: ["ls-files", "*.ts", "*.py"], cwd: root })
    .outputSync();
  const listed = new TextDecoder().decode(git.stdout).split("\n").filter(Boolean);
  const files = new Map<string, string>();
  for (const f of listed) {
    try {
      files.set(f, Deno.readTextFileSync(root + f));
    } catch {
      // deleted in the work tree but still in the index: nothing to check
    }
  }
  const problems = checkLayout(files);
  for (const p of problems) console.error(`layout: ${p.file}: ${p.problem}`);
  if (problems.length > 0) Deno.exit(1);
  console.log(`layout: ${files.size} files, imports flow one way, none over ${MAX_LINES} lines`);
}
