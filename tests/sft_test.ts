/**
 * SFT end to end: python/chat_template.jinja renders the same with @huggingface/jinja and
 * jinja2; `deno task train` → `deno task export` → `deno task sft` on a tiny config gives a
 * gollm directory whose chat, rendered with its own template, follows the turn format and
 * stops at the end of the assistant turn (EOS), while the base model does not; `gollm chat`
 * runs it. Skipped with a printed reason when python3 lacks torch or jinja2.
 */
import assert from "node:assert/strict";
import { loadModel } from "../runtime/model.ts";
import { type ChatMessage, renderChat } from "../tokenizers/chat_template.ts";
import { pythonSkipReason } from "./python_probe.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TEMPLATE = await Deno.readTextFile(`${ROOT}python/chat_template.jinja`);

const noJinja = await pythonSkipReason("jinja2, yaml");
if (noJinja) console.log(`skipping the jinja2 parity test: ${noJinja}`);

/** Conversations that exercise the template: roles, multi-turn, unicode, quotes, newlines. */
const CASES: { messages: ChatMessage[]; gen: boolean }[] = [
  { messages: [], gen: true },
  { messages: [{ role: "user", content: "Hello" }], gen: true },
  {
    messages: [{ role: "user", content: "Hello" }, { role: "assistant", content: "Hi." }],
    gen: false,
  },
  {
    messages: [
      { role: "system", content: "Answer briefly." },
      { role: "user", content: 'Quote "this"\nand {{ that }} {% raw %}' },
      { role: "assistant", content: "Café — 🙂 'ok'" },
      { role: "user", content: "  spaces  " },
    ],
    gen: true,
  },
  { messages: [{ role: "system", content: "" }, { role: "user", content: "x" }], gen: false },
];

Deno.test({
  name: "python/chat_template.jinja renders the same with @huggingface/jinja and jinja2",
  ignore: noJinja !== null,
  async fn() {
    const script = "import json, sys\nsys.path.insert(0, sys.argv[1])\n" +
      "from chat_template import render_chat\n" +
      "cases = json.load(sys.stdin)\n" +
      "print(json.dumps([render_chat(open(sys.argv[2]).read(), c['messages'], c['gen'], " +
      "'<|bos|>', '<|eos|>') for c in cases]))";
    const child = new Deno.Command("python3", {
      args: ["-c", script, `${ROOT}python`, `${ROOT}python/chat_template.jinja`],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(CASES)));
    await w.close();
    const out = await child.output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const jinja2: string[] = JSON.parse(new TextDecoder().decode(out.stdout));
    for (const [i, c] of CASES.entries()) {
      const ours = renderChat(TEMPLATE, c.messages, {
        addGenerationPrompt: c.gen,
        bosToken: "<|bos|>",
        eosToken: "<|eos|>",
      });
      assert.equal(ours, jinja2[i], `case ${i}`);
    }
    assert.equal(
      jinja2[3],
      '<|bos|>System: Answer briefly.\n\nUser: Quote "this"\nand {{ that }} {% raw %}\n\n' +
        "Assistant: Café — 🙂 'ok'<|eos|>\n\nUser:   spaces  \n\nAssistant:",
    );
  },
});

const noTorch = await pythonSkipReason(
  "torch, jinja2, tiktoken, tokenizers, yaml, safetensors, tqdm",
);
if (noTorch) console.log(`skipping the SFT end-to-end test: ${noTorch}`);

/** The chat data of the tiny run: short, distinct replies the model can learn in ~100 steps. */
const CHATS: ChatMessage[][] = [
  [
    { role: "system", content: "Answer briefly." },
    { role: "user", content: "Who gave the 1862 address?" },
    { role: "assistant", content: "Abraham Lincoln." },
  ],
  [{ role: "user", content: "Hello" }, { role: "assistant", content: "Hello there." }],
  [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hi." },
    { role: "user", content: "Thanks" },
    { role: "assistant", content: "You are welcome." },
  ],
  [
    { role: "user", content: "What year was the first address?" },
    { role: "assistant", content: "1790." },
  ],
];

async function task(args: string[]): Promise<void> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  assert.equal(r.code, 0, `${args.join(" ")}:\n${dec.decode(r.stdout)}\n${dec.decode(r.stderr)}`);
}

/** Greedy reply to `messages` rendered with the model's template: text and why it stopped. */
async function reply(dir: string, messages: ChatMessage[]) {
  const model = await loadModel(dir);
  const tok = model.tokenizer!;
  const prompt = renderChat(tok.chatTemplate, messages, {
    addGenerationPrompt: true,
    bosToken: tok.tokenPiece(tok.bosId!),
    eosToken: tok.tokenPiece(tok.eosIds[0]),
  });
  let text = "";
  const bos = tok.tokenPiece(tok.bosId!);
  for await (
    const piece of model.generate(prompt.slice(bos.length), {
      temperature: 0,
      maxTokens: 24,
      addBos: true,
      special: true,
    })
  ) text += piece;
  return { prompt, text, stopReason: model.stats!.stopReason, template: tok.chatTemplate };
}

Deno.test({
  name: "deno task sft: the finetuned model follows the turn format and stops at the turn end",
  ignore: noTorch !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "gollm-sft-" });
    try {
      // A corpus in the words of the chats, for the tokenizer and a few pretraining steps.
      const words = CHATS.flat().map((m) => m.content).join(" ") +
        " System User Assistant the union of states and the people";
      const lines = [];
      for (let i = 0; i < 400; i++) lines.push(`${words} ${i}.`);
      await Deno.writeTextFile(`${dir}/corpus.txt`, lines.join("\n\n") + "\n");
      await Deno.writeTextFile(
        `${dir}/chat.jsonl`,
        CHATS.map((m) => JSON.stringify({ messages: m })).join("\n") + "\n",
      );
      await Deno.writeTextFile(
        `${dir}/c.yaml`,
        `arch: llama\nvocab_size: 384\ndim: 64\nn_layers: 2\nn_heads: 4\nn_kv_heads: 2\n` +
          `hidden_dim: 128\ncontext_length: 96\nnorm: rmsnorm\nnorm_eps: 1.0e-5\nmlp: swiglu\n` +
          `tie_embeddings: true\ntokenizer: tokenizer.tiktoken\n` +
          `train:\n  corpus: ${dir}/corpus.txt\n  out_dir: ${dir}/run\n  batch_size: 4\n` +
          `  context: 64\n  max_steps: 10\n  eval_interval: 10\n  eval_batches: 1\n  threads: 1\n` +
          `sft:\n  base: ${dir}/base\n  batch_size: 4\n  max_steps: 100\n  lr: 3.0e-3\n` +
          `  warmup_steps: 5\n  eval_interval: 50\n  val_fraction: 0\n  threads: 1\n`,
      );
      const cfg = `${dir}/c.yaml`;
      await task([`${ROOT}tasks/train.ts`, "--config", cfg, "--no-progress"]);
      await task([`${ROOT}tasks/export.ts`, "--config", cfg, "--out", `${dir}/base`]);
      await task([
        `${ROOT}tasks/sft.ts`,
        "--config",
        cfg,
        "--data",
        `${dir}/chat.jsonl`,
        "--no-progress",
      ]);
      const tuned = `${dir}/run/sft/model`;

      const ask: ChatMessage[] = [
        { role: "system", content: "Answer briefly." },
        { role: "user", content: "Who gave the 1862 address?" },
      ];
      const r = await reply(tuned, ask);
      assert.equal(r.template, TEMPLATE); // chat_template.jinja was exported beside the weights
      assert.equal(
        r.prompt,
        "<|bos|>System: Answer briefly.\n\nUser: Who gave the 1862 address?\n\nAssistant:",
      );
      assert.equal(r.text, " Abraham Lincoln.");
      assert.equal(r.stopReason, "eos");
      // A second turn: the first reply is closed by <|eos|> and a blank line in the prompt.
      const r2 = await reply(tuned, [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hi." },
        { role: "user", content: "Thanks" },
      ]);
      assert.equal(
        r2.prompt,
        "<|bos|>User: Hi\n\nAssistant: Hi.<|eos|>\n\nUser: Thanks\n\nAssistant:",
      );
      assert.deepEqual([r2.text, r2.stopReason], [" You are welcome.", "eos"]);

      // Negative control: the base model, same template and prompt, does not end its turn.
      await Deno.writeTextFile(`${dir}/base/chat_template.jinja`, TEMPLATE);
      const b = await reply(`${dir}/base`, ask);
      assert.equal(b.prompt, r.prompt);
      assert.equal(b.stopReason, "max_tokens");

      // gollm chat runs the finetuned directory and prints the reply.
      const chat = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}cli/main.ts`, "chat", "--model", tuned, "--temperature", "0"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = chat.stdin.getWriter();
      await w.write(new TextEncoder().encode("Hello\n"));
      await w.close();
      const out = await chat.output();
      const dec = new TextDecoder();
      assert.equal(out.code, 0, dec.decode(out.stderr));
      assert.equal(dec.decode(out.stdout), "Hello there.\n");
      assert.match(dec.decode(out.stderr), /\(its chat template\)/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
