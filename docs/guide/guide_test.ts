/**
 * The guide in CI: every step program runs and passes its own checks (each compares its code
 * with gollm's engine and exits 1 when a claim fails), and every page shows the output its
 * program prints now and the code it holds now, so a page that drifts from the code fails
 * here. `deno task guide --update` refreshes the pages.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isFile } from "./lib.ts";
import { CAPTURE_ASSETS, compare, GUIDE, refresh, runStep, steps } from "./pages.ts";

const PAGE = [
  "# A page",
  "",
  "<!-- output: numbers -->",
  "",
  "```text",
  "x (5, 64)",
  "~ decode: 536 tokens/s",
  "```",
  "",
  "<!-- code: add -->",
  "```ts ignore",
  "const add = (a: number, b: number) => a + b;",
  "```",
  "",
].join("\n");
const SOURCE = "// #region add\nconst add = (a: number, b: number) => a + b;\n// #endregion add\n";

Deno.test("compare() accepts an up-to-date page; measured lines match by label", () => {
  assert.deepEqual(compare(PAGE, "== numbers ==\nx (5, 64)\n~ decode: 212 tokens/s\n", SOURCE), []);
});

Deno.test("compare() reports a changed line, a changed region, a section not shown", () => {
  const [changed] = compare(PAGE, "== numbers ==\nx (5, 32)\n~ decode: 1 tokens/s\n", SOURCE);
  assert.match(
    changed,
    /output 'numbers', line 1: the page shows "x \(5, 64\)", the step gives "x \(5, 32\)"/,
  );
  const [code] = compare(
    PAGE,
    "== numbers ==\nx (5, 64)\n~ decode: 1\n",
    SOURCE.replace("a + b", "b + a"),
  );
  assert.match(code, /code 'add', line 1/);
  const [label] = compare(PAGE, "== numbers ==\nx (5, 64)\n~ prefill: 1\n", SOURCE);
  assert.match(label, /line 2/); // a measured line with another label is a change
  const [unseen] = compare(
    PAGE,
    "== numbers ==\nx (5, 64)\n~ decode: 1\n\n== more ==\ny\n",
    SOURCE,
  );
  assert.equal(unseen, "the page does not show the section 'more'");
});

Deno.test("refresh() rewrites the tied blocks and nothing else", () => {
  const next = refresh(PAGE, "== numbers ==\nx (9, 9)\n~ decode: 1 tokens/s\n", SOURCE);
  assert.equal(next, PAGE.replace("x (5, 64)", "x (9, 9)").replace("536", "1"));
});

const missing = CAPTURE_ASSETS.filter((p) => !isFile(p));
if (missing.length > 0) {
  console.log(
    `skip the page comparisons of docs/guide: missing ${missing.join(", ")} (set GOLLM_ASSETS)`,
  );
}

for (const step of steps()) {
  Deno.test(`docs/guide/${step}.ts passes its checks and its page shows its output`, async () => {
    const run = await runStep(step);
    assert.equal(run.code, 0, `${step} failed:\n${run.stderr}`);
    if (missing.length > 0 || run.stdout.split("\n").some((l) => l.startsWith("skip: "))) return;
    const page = await Deno.readTextFile(`${GUIDE}${step}.md`);
    const source = await Deno.readTextFile(`${GUIDE}${step}.ts`);
    assert.deepEqual(
      compare(page, run.stdout, source),
      [],
      `${step}.md is stale: run deno task guide --update`,
    );
  });
}
