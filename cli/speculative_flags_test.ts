/**
 * The speculative flags end to end through `gollm generate` and `gollm chat` (a subprocess
 * each): the same greedy text and ids with `--draft models/draft` and `--ngram`, the stats
 * in `--json` and on stderr, and one-line errors for `--draft` with `--ngram` and for a draft
 * model with another vocabulary.
 */
import assert from "node:assert/strict";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { randomWeights } from "../core/weights.ts";
import { byteTokenizer, tinyConfig } from "../tests/model_fixtures.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function gollm(args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/main.ts`, ...args],
    cwd: ROOT,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

const GREEDY = ["generate", "--prompt", "The state of the Union", "-n", "60", "--temperature", "0"];

Deno.test("gollm generate --draft / --ngram: plain greedy's text and ids, stats in --json", async () => {
  const [plain, draft, lookup] = await Promise.all([
    gollm([...GREEDY, "--json"]),
    gollm([...GREEDY, "--json", "--draft", "models/draft", "--draft-max", "4"]),
    gollm([...GREEDY, "--json", "--ngram"]),
  ]);
  for (const r of [plain, draft, lookup]) assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(plain.stdout), d = JSON.parse(draft.stdout), l = JSON.parse(lookup.stdout);
  assert.equal(p.speculative, undefined);
  for (const [name, x] of [["draft", d], ["lookup", l]] as const) {
    assert.equal(x.text, p.text, name);
    assert.deepEqual(x.tokens, p.tokens, name);
    const s = x.speculative;
    assert.ok(s.steps > 0 && s.accepted <= s.drafted, name);
    assert.equal(s.acceptance_rate, Math.round(s.accepted / s.drafted * 1e4) / 1e4, name);
    assert.ok(s.tokens_per_step >= 1, name);
  }
  assert.match(d.speculative.proposer, /^draft model models\/draft$/);
  assert.equal(d.speculative.draft_max, 4);
  assert.equal(l.speculative.proposer, "ngram 1..3");
});

Deno.test("gollm generate --ngram prints the speculative stats on stderr", async () => {
  const r = await gollm([...GREEDY, "--ngram", "--ngram-max", "2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /\| speculative \(ngram 1\.\.2\): \d+\/\d+ drafts accepted \(\d+\.\d %\), \d+\.\d\d tokens per target step\n/,
  );
});

Deno.test("gollm generate: --draft with --ngram, or a draft with another vocabulary, is one error line", async () => {
  const both = await gollm([...GREEDY, "--draft", "models/draft", "--ngram"]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^error: give --draft or --ngram, not both/);

  const dir = await Deno.makeTempDir();
  try {
    const c = tinyConfig("llama", { dim: 32, hidden_dim: 32 });
    await writeGollmDir({
      format: "gollm",
      path: "<test>",
      config: c,
      weights: randomWeights(c, 1),
      tokenizer: byteTokenizer(),
    }, `${dir}/d`);
    const r = await gollm([...GREEDY, "--draft", `${dir}/d`]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trimEnd().split("\n").filter((l) => !l.startsWith("loaded "));
    assert.equal(lines.length, 1, r.stderr);
    assert.equal(
      lines[0],
      `error: draft model ${dir}/d: its vocabulary differs from the target's ` +
        `(${ROOT}models/default): vocab_size 258 vs 4096; a draft model needs the target's ` +
        `tokenizer`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gollm chat --draft: replies as without it, a speculative line after each", async () => {
  const args = ["chat", "-n", "24", "--temperature", "0"];
  const input = "What is the state of the Union?\nAnd the economy?\n";
  const [plain, spec] = await Promise.all([
    gollm(args, input),
    gollm([...args, "--draft", "models/draft"], input),
  ]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(spec.code, 0, spec.stderr);
  assert.equal(spec.stdout, plain.stdout);
  const lines = spec.stderr.split("\n").filter((l) => l.startsWith("(speculative (draft model "));
  assert.equal(lines.length, 2, spec.stderr);
});
