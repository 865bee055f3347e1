/**
 * Chat template rendering against transformers' `apply_chat_template` (expected strings
 * committed by python/hf_fixtures.py).
 */
import assert from "node:assert/strict";
import { type ChatMessage, renderChat } from "./chat_template.ts";
import { GollmError } from "../core/errors.ts";
import { loadHfTokenizer } from "./hf_tokenizer.ts";
import { ASSETS, haveFiles, ROOT } from "../tests/assets.ts";

const LLAMA3_CONFIG = `${ASSETS}/tokenizers/llama3/tokenizer_config.json`;

interface Render {
  template: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  bos_token: string;
  eos_token: string;
  expected: string;
}

const fixture = JSON.parse(
  await Deno.readTextFile(`${ROOT}tests/fixtures/hf/chat_templates.json`),
) as { templates: Record<string, string>; renders: Render[] };

const haveLlama3 = haveFiles("Llama-3 chat template tests", [LLAMA3_CONFIG]);

Deno.test({
  name: "renderChat() renders the Llama-3 template exactly like transformers",
  ignore: !haveLlama3,
  fn: () => {
    const cfg = JSON.parse(Deno.readTextFileSync(LLAMA3_CONFIG));
    const cases = fixture.renders.filter((r) => r.template === "llama3");
    assert.equal(cases.length, 4);
    for (const r of cases) {
      const got = renderChat(cfg.chat_template, r.messages, {
        addGenerationPrompt: r.add_generation_prompt,
        bosToken: r.bos_token,
        eosToken: r.eos_token,
      });
      assert.equal(got, r.expected, JSON.stringify(r.messages));
    }
  },
});

Deno.test({
  name: "renderChat() with the template loadHfTokenizer() reads gives encodable Llama-3 prompts",
  ignore: !haveLlama3,
  fn: async () => {
    const tok = (await loadHfTokenizer(`${ASSETS}/tokenizers/llama3`))!;
    const r = fixture.renders.find((r) => r.template === "llama3" && r.messages.length > 1)!;
    const text = renderChat(tok.chatTemplate, r.messages, {
      addGenerationPrompt: true,
      bosToken: "<|begin_of_text|>",
      eosToken: "<|end_of_text|>",
    });
    assert.equal(text, r.expected);
    const ids = tok.encode(text, { bos: false, special: true });
    assert.equal(ids[0], 128000); // <|begin_of_text|>
    assert.equal(ids[1], 128006); // <|start_header_id|>
    assert.equal(ids.filter((i) => i === 128009).length, r.messages.length); // <|eot_id|>
    assert.equal(tok.decode(ids), text.slice("<|begin_of_text|>".length)); // BOS dropped
  },
});

for (const name of Object.keys(fixture.templates)) {
  Deno.test(`renderChat() renders the ${name} template exactly like transformers`, () => {
    const cases = fixture.renders.filter((r) => r.template === name);
    assert.ok(cases.length >= 4);
    for (const r of cases) {
      const got = renderChat(fixture.templates[name], r.messages, {
        addGenerationPrompt: r.add_generation_prompt,
        bosToken: r.bos_token,
        eosToken: r.eos_token,
      });
      assert.equal(
        got,
        r.expected,
        `${name} ${JSON.stringify(r.messages)} agp=${r.add_generation_prompt}`,
      );
    }
  });
}

Deno.test("renderChat() surfaces raise_exception from the template as a GollmError", () => {
  assert.throws(
    () =>
      renderChat(fixture.templates.mistral, [{ role: "system", content: "x" }], {
        addGenerationPrompt: false,
        bosToken: "<s>",
        eosToken: "</s>",
      }),
    (e: unknown) =>
      e instanceof GollmError &&
      e.message === "chat template failed to render: Conversation roles must " +
          "alternate user/assistant/user/assistant/...",
  );
  assert.throws(
    () => renderChat("{% for %}", [], { addGenerationPrompt: false }),
    (e: unknown) =>
      e instanceof GollmError && e.message.startsWith("chat template cannot be parsed"),
  );
});

Deno.test("renderChat() without a template uses the plain Role: content format", () => {
  const msgs = [{ role: "system", content: "Be terse." }, { role: "user", content: "Hi" }];
  assert.equal(
    renderChat(undefined, msgs, { addGenerationPrompt: true, bosToken: "<s>" }),
    "<s>System: Be terse.\n\nUser: Hi\n\nAssistant:",
  );
  assert.equal(
    renderChat("", msgs.slice(1), { addGenerationPrompt: false }),
    "User: Hi\n\n",
  );
});
