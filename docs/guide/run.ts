/**
 * `deno task guide`: runs every step of the guide, each in its own process, prints what it
 * prints, and checks that its page shows that output and its code as they are now.
 *
 *     deno task guide                 every step, then one line per step
 *     deno task guide 03 05           only steps 03 and 05
 *     deno task guide --quiet         only the line per step
 *     deno task guide --update        rewrite the pages' output and code blocks from the run
 *
 * Exits 1 when a step fails (one of its checks, or a crash) or a page is stale. Pages are
 * compared only when the shared assets they were captured with are present (the steps fall
 * back to models/default and js-tiktoken without them, and print other figures).
 *
 * @module
 */
import { CAPTURE_ASSETS, compare, GUIDE, refresh, runStep, steps } from "./pages.ts";
import { isFile } from "./lib.ts";

const args = Deno.args.filter((a) => !a.startsWith("--"));
const update = Deno.args.includes("--update"), quiet = Deno.args.includes("--quiet");
const unknown = Deno.args.filter((a) => a.startsWith("--") && !["--update", "--quiet"].includes(a));
if (unknown.length > 0) {
  console.error(`error: unknown option ${unknown[0]} (known: --update, --quiet)`);
  Deno.exit(2);
}
const chosen = steps().filter((s) => args.length === 0 || args.some((a) => s.startsWith(a)));
if (chosen.length === 0) {
  console.error(`error: no step matches ${args.join(", ")} (steps: ${steps().join(", ")})`);
  Deno.exit(2);
}
const missing = CAPTURE_ASSETS.filter((p) => !isFile(p));
const summary: string[] = [];
let failed = 0;
for (const step of chosen) {
  if (!quiet) console.log(`\n######## docs/guide/${step}.ts\n`);
  const run = await runStep(step);
  if (!quiet) await Deno.stdout.write(new TextEncoder().encode(run.stdout));
  const time = `${run.seconds.toFixed(1)} s`;
  if (run.code !== 0) {
    failed++;
    const why = run.stderr.trim().split("\n").filter((l) => l.startsWith("error:")).at(-1) ??
      run.stderr.trim().split("\n").at(-1);
    summary.push(`${step}: FAILED (exit ${run.code}, ${time}): ${why}`);
    continue;
  }
  const checks = run.stdout.split("\n").filter((l) => /^(check ok|control):/.test(l)).length;
  const skip = run.stdout.split("\n").find((l) => l.startsWith("skip: "));
  const pagePath = `${GUIDE}${step}.md`, sourcePath = `${GUIDE}${step}.ts`;
  const page = await Deno.readTextFile(pagePath), source = await Deno.readTextFile(sourcePath);
  let status: string;
  if (skip) status = `page not compared (${skip})`;
  else if (missing.length > 0) status = `page not compared (missing ${missing[0]})`;
  else if (update) {
    const next = refresh(page, run.stdout, source);
    if (next !== page) {
      await Deno.writeTextFile(pagePath, next);
      await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", pagePath] }).output();
    }
    const left = compare(next, run.stdout, source);
    status = next === page ? "page up to date" : "page updated";
    if (left.length > 0) {
      failed++;
      status = `page INCOMPLETE: ${left[0]}`;
    }
  } else {
    const problems = compare(page, run.stdout, source);
    if (problems.length === 0) status = "page up to date";
    else {
      failed++;
      status = `page STALE: ${problems[0]} (deno task guide --update refreshes it)`;
    }
  }
  summary.push(`${step}: ok, ${checks} checks (${time}); ${status}`);
}
console.log(`\n${summary.join("\n")}`);
if (failed > 0) {
  console.error(`error: ${failed} of ${chosen.length} steps failed or have stale pages`);
  Deno.exit(1);
}
