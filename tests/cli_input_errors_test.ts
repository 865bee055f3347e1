/**
 * Table-driven CLI test of bad INPUT FILES (issue #12 items 1-18 where a command line reaches
 * them, #7 items 6-7): each case writes a damaged model, config or tokenizer (or names a FIFO,
 * `/dev/zero`, `/proc/self/mem`, a directory) and runs `gollm` on it as a subprocess
 * (tests/cli_cases.ts): exit 1 with exactly one `error:` line naming the file, field or
 * option, no stack trace, within a short time bound (a FIFO must not block, `/dev/zero` must
 * not grow memory), nothing left behind. A few inputs that once crashed or hung but are valid
 * (an empty special token, a BOM, a catastrophic regex that gollm runs in linear time, a
 * tokenizer smaller than a padded vocabulary) must succeed instead (exit 0, no error line).
 */
import {
  type Case,
  cutTokenizerStories,
  DEFAULT,
  defaultDir,
  editSafetensorsHeader,
  hfDir,
  mkfifo,
  NEEDS_STORIES,
  patchedStories,
  ROOT,
  runCases,
  scriptedDir,
  STORIES_DIR,
} from "./cli_cases.ts";

const CASES: Case[] = [
  // #12 item 1 / #7 item 7: NaN weights (tests/cli_errors_test.ts). Item 2: nothing is sized
  // by a huge context length but the KV ring: without --kv-capacity the arena is refused in
  // one line naming the option; with it the model runs (tests/long_context_test.ts runs it on
  // every backend).
  {
    name: "generate on a GGUF whose llama.context_length is 2^31-1 names --kv-capacity",
    args: ["generate", "$T/s.gguf", "--prompt", "Once", "-n", "2"],
    setup: (tmp) => patchedStories(`${tmp}/s.gguf`, { "llama.context_length": 2 ** 31 - 1 }),
    code: 1,
    error:
      /^error: .*s\.gguf: the wasm backend needs \d+ bytes .*kvCapacity 2147483647.*lower --kv-capacity/,
    skip: NEEDS_STORIES,
  },
  {
    name: "generate --backend reference on a 2^31-1 context names --kv-capacity",
    args: ["generate", "$T/s.gguf", "--prompt", "Once", "-n", "2", "--backend", "reference"],
    setup: (tmp) => patchedStories(`${tmp}/s.gguf`, { "llama.context_length": 2 ** 31 - 1 }),
    code: 1,
    error: /^error: could not allocate the KV cache of \d+ bytes .*; lower --kv-capacity/,
    skip: NEEDS_STORIES,
  },
  {
    name: "generate --kv-capacity 256 on a GGUF whose context length is 2^31-1 runs",
    args: ["generate", "$T/s.gguf", "--prompt", "Once", "-n", "2", "--kv-capacity", "256"],
    setup: (tmp) => patchedStories(`${tmp}/s.gguf`, { "llama.context_length": 2 ** 31 - 1 }),
    code: 0,
    skip: NEEDS_STORIES,
  },
  {
    name: "generate on a llama2.c .bin whose header seq_len is 2^31-1 (v0: freq_cis tables)",
    args: ["generate", "$T/s.bin", "--tokenizer", `${STORIES_DIR}/tok512.bin`, "--prompt", "a"],
    setup: async (tmp) => {
      const bytes = await Deno.readFile(`${STORIES_DIR}/stories260K.bin`);
      new DataView(bytes.buffer).setInt32(24, 2 ** 31 - 1, true); // header int 7: seq_len
      await Deno.writeFile(`${tmp}/s.bin`, bytes);
    },
    code: 1,
    error:
      /^error: .*s\.bin: truncated: the v0 header \(.*seq_len 2147483647.*\) implies \d+ bytes, file has/,
    skip: NEEDS_STORIES,
  },
  {
    name: "generate on a gollm directory whose config.yaml context_length is 2^31",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      defaultDir(
        `${tmp}/m`,
        (y) => y.replace(/^context_length: .*$/m, "context_length: 2147483648"),
      ),
    code: 1,
    error:
      /^error: .*m\/config\.yaml: field 'context_length' must be at most 2147483647 \(2\^31 - 1\), got 2147483648$/,
  },
  {
    name: "generate on an HF directory whose max_position_embeddings is 1e8 names --kv-capacity",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "config.json": (c) => void (c.max_position_embeddings = 1e8),
      }),
    code: 1,
    error: /^error: the arena needs \d+ bytes .*kvCapacity 100000000.* lower --kv-capacity/,
  },
  // Item 3, 4, 11: tokenizer.json structure and ids.
  {
    name: "tokenizer.json whose added_tokens is an object",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "tokenizer.json": (t) => {
          const list = t.added_tokens as { content: string }[];
          t.added_tokens = Object.fromEntries(list.map((a) => [a.content, a]));
        },
      }),
    code: 1,
    error: /^error: .*m\/tokenizer\.json: field 'added_tokens' must be a list/,
  },
  ...[99999999, -5, 1.5].map((id): Case => ({
    name: `tokenizer.json whose post_processor special id is ${id}`,
    args: ["tokenize", "$T/m", "--text", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "tokenizer.json": (t) => {
          const pp = t.post_processor as { special_tokens: Record<string, { ids: number[] }> };
          pp.special_tokens["<s>"].ids = [id];
        },
      }),
    code: 1,
    error: new RegExp(
      `^error: .*m/tokenizer\\.json: post_processor\\.special_tokens\\["<s>"\\]\\.ids\\[0\\] is ${id}; expected an integer id`,
    ),
  })),
  {
    name: "tokenizer.json with a vocab id of 2^31",
    args: ["tokenize", "$T/m", "--text", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "tokenizer.json": (t) => {
          const vocab = (t.model as { vocab: Record<string, number> }).vocab;
          vocab[Object.keys(vocab)[10]] = 2 ** 31;
        },
      }),
    code: 1,
    error: /^error: .*m\/tokenizer\.json: model\.vocab\[.*\] is 2147483648; expected an integer id/,
    timeoutMs: 20_000,
  },
  // Item 5: a tokenizer that does not fit the model is refused at load, naming the file; one
  // with fewer ids than a padded vocabulary is accepted (its missing ids decode to nothing).
  {
    name: "config.yaml naming gpt2 for a 4,096-id model",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) => defaultDir(`${tmp}/m`, (y) => y.replace(/^tokenizer: .*$/m, "tokenizer: gpt2")),
    code: 1,
    error:
      /^error: .*m\/config\.yaml \(tokenizer: gpt2\): the tokenizer has 50257 ids but the model's vocabulary has 4096 rows/,
  },
  {
    name: "GGUF whose token arrays are cut to 3 entries for 512 rows",
    args: ["generate", "$T/s.gguf", "--prompt", "a"],
    setup: (tmp) => cutTokenizerStories(`${tmp}/s.gguf`, 3),
    code: 1,
    error: /^error: .*s\.gguf.*: the tokenizer has 3 ids but the model's vocabulary has 512 rows/,
    skip: NEEDS_STORIES,
  },
  {
    name: "a tiktoken file cut to 700 lines for a 4,096-id model is accepted",
    args: ["generate", "$T/m", "--prompt", "Once", "-n", "2"],
    setup: (tmp) =>
      defaultDir(`${tmp}/m`, undefined, (t) => t.split("\n").slice(0, 700).join("\n")),
    code: 0,
  },
  // Item 6: paths that are not regular files.
  {
    name: "config.yaml tokenizer with a trailing slash",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      defaultDir(
        `${tmp}/m`,
        (y) => y.replace(/^tokenizer: .*$/m, 'tokenizer: "tokenizer.tiktoken/"'),
      ),
    code: 1,
    error: /^error: .*m\/tokenizer\.tiktoken\/: tokenizer file path ends with '\/'/,
  },
  {
    name: "chat_template.jinja that is a directory",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: async (tmp) => {
      await defaultDir(`${tmp}/m`);
      await Deno.mkdir(`${tmp}/m/chat_template.jinja`);
    },
    code: 1,
    error: /^error: .*m\/chat_template\.jinja: cannot read chat template: it is a directory/,
  },
  // Item 7: an empty special token is ignored (as HF tokenizers does), not a 2 GB loop.
  {
    name: "tokenize --special with an empty added token",
    args: ["tokenize", "$T/m", "--text", "hi </s> there <s>", "--special"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "tokenizer.json": (t) => void ((t.added_tokens as { content: string }[])[2].content = ""),
      }),
    code: 0,
    timeoutMs: 20_000,
  },
  {
    name: "chat with an empty added token",
    args: ["chat", "$T/m", "-n", "2"],
    stdin: "hi there\n",
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "tokenizer.json": (t) => void ((t.added_tokens as { content: string }[])[2].content = ""),
      }),
    code: 0,
    timeoutMs: 30_000,
  },
  // Item 8: a one-word prompt of 1 MB (stdin: argv holds at most 128 kB per argument).
  {
    name: "chat with a 1 MB one-word message is refused at once, naming the context",
    args: ["chat", DEFAULT, "-n", "2"],
    stdin: "a".repeat(1 << 20) + "\n",
    code: 1,
    error: /^error: the prompt is \d{7} tokens, longer than the context length 256/,
    allow: /^(chat with |\(the message was dropped)/,
    timeoutMs: 40_000,
  },
  {
    name: "generate with a 120 kB one-word prompt is refused at once",
    args: ["generate", DEFAULT, "--prompt", "a".repeat(120_000)],
    code: 1,
    error: /^error: the prompt is 120001 tokens, longer than the context length 256/,
    timeoutMs: 30_000,
  },
  // Item 9, 14, 18: special files as model and tokenizer must neither hang nor grow.
  {
    name: "generate --model /proc/self/mem",
    args: ["generate", "--model", "/proc/self/mem", "--prompt", "a"],
    code: 1,
    error: /^error: \/proc\/self\/mem: not a recognised model file/,
    timeoutMs: 20_000,
  },
  {
    name: "generate --model FIFO does not block",
    args: ["generate", "--model", "$T/fifo", "--prompt", "a"],
    setup: (tmp) => mkfifo(`${tmp}/fifo`),
    code: 1,
    error: /^error: .*\/fifo: cannot read model file: it is a FIFO, not a regular file$/,
    timeoutMs: 20_000,
  },
  {
    name: "generate --model /dev/zero does not grow",
    args: ["generate", "--model", "/dev/zero", "--prompt", "a"],
    code: 1,
    error: /^error: \/dev\/zero: cannot read model file: it is a character device/,
    timeoutMs: 20_000,
  },
  {
    name: "generate --tokenizer FIFO does not block",
    args: ["generate", DEFAULT, "--tokenizer", "$T/fifo.tiktoken", "--prompt", "a"],
    setup: (tmp) => mkfifo(`${tmp}/fifo.tiktoken`),
    code: 1,
    error: /^error: .*\/fifo\.tiktoken: cannot read tokenizer file: it is a FIFO/,
    timeoutMs: 20_000,
  },
  {
    name: "tokenize --tokenizer /dev/zero does not grow",
    args: ["tokenize", DEFAULT, "--tokenizer", "/dev/zero", "--text", "a"],
    code: 1,
    error: /^error: \/dev\/zero: cannot read tokenizer file: it is a character device/,
    timeoutMs: 20_000,
  },
  {
    name: "generate --tokenizer DIRECTORY",
    args: ["generate", DEFAULT, "--tokenizer", "$T/tok", "--prompt", "a"],
    setup: (tmp) => Deno.mkdir(`${tmp}/tok`),
    code: 1,
    error: /^error: .*\/tok: cannot read tokenizer file: it is a directory, not a regular file$/,
  },
  {
    name: "generate --tokenizer README.md (not a tokenizer)",
    args: ["generate", DEFAULT, "--tokenizer", `${ROOT}README.md`, "--prompt", "a"],
    code: 1,
    error: /^error: .*README\.md: unknown tokenizer kind; expected none, gpt2/,
  },
  {
    name: "generate a llama2.c .bin with --tokenizer README.md (#7: not a tokenizer.bin file)",
    args: ["generate", `${STORIES_DIR}/stories260K.bin`, "--tokenizer", `${ROOT}README.md`],
    code: 1,
    error: /^error: .*README\.md: not a llama2\.c tokenizer\.bin file/,
    skip: NEEDS_STORIES,
  },
  {
    name: "convert DEFAULT . --force in a scratch directory refuses to replace the cwd",
    args: ["convert", DEFAULT, ".", "--force"],
    cwd: "$T/work",
    setup: async (tmp) => {
      await Deno.mkdir(`${tmp}/work`);
      await Deno.writeTextFile(`${tmp}/work/keep.txt`, "mine\n");
    },
    code: 1,
    error: /^error: \.: refusing to replace the current directory or one of its parents/,
  },
  {
    name: "convert DEFAULT .. --force refuses to replace a parent of the cwd",
    args: ["convert", DEFAULT, "..", "--force"],
    cwd: "$T/work",
    setup: (tmp) => Deno.mkdir(`${tmp}/work`),
    code: 1,
    error: /^error: \.\.: refusing to replace the current directory or one of its parents/,
  },
  // Item 10 / #7 item 7: far more layers than the file holds tensors for.
  {
    name: "generate on a gollm directory whose config.yaml n_layers is 1e8",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      defaultDir(`${tmp}/m`, (y) => y.replace(/^n_layers: .*$/m, "n_layers: 100000000")),
    code: 1,
    error: /^error: .*m\/config\.yaml: field 'n_layers' must be at most 65536/,
    timeoutMs: 20_000,
  },
  {
    name: "generate on a gollm directory whose config.yaml n_layers is 60000 (within the bound)",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) => defaultDir(`${tmp}/m`, (y) => y.replace(/^n_layers: .*$/m, "n_layers: 60000")),
    code: 1,
    error:
      /^error: .*m\/model\.safetensors: holds 56 tensors \(layers 0\.\.5\) but the config's n_layers 60000 needs/,
    timeoutMs: 20_000,
  },
  {
    name: "generate on an HF directory whose num_hidden_layers is 2^31",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "config.json": (c) => void (c.num_hidden_layers = 2 ** 31),
      }),
    code: 1,
    error:
      /^error: .*m\/config\.json: field 'n_layers' must be at most 65536 \(2\^16\), got 2147483648$/,
    timeoutMs: 20_000,
  },
  {
    name: "generate on a GGUF whose llama.block_count is 1e8",
    args: ["generate", "$T/s.gguf", "--prompt", "a"],
    setup: (tmp) => patchedStories(`${tmp}/s.gguf`, { "llama.block_count": 1e8 }),
    code: 1,
    error:
      /^error: .*s\.gguf: metadata 'llama\.block_count' = 100000000 but the tensors hold 5 blocks/,
    timeoutMs: 20_000,
    skip: NEEDS_STORIES,
  },
  // Item 12: regexes from the file that backtrack catastrophically are run by a linear-time
  // engine (tokenizers/regex_linear.ts), and text a pattern does not match is kept.
  {
    name: "tokenize with a tiktoken '#pattern (a|a)*b' on a long run of 'a' returns",
    args: ["tokenize", "$T/m", "--text", "a".repeat(5000)],
    setup: (tmp) =>
      defaultDir(`${tmp}/m`, undefined, (t) => t.replace(/^#pattern .*$/m, "#pattern (a|a)*b")),
    code: 0,
    timeoutMs: 30_000,
  },
  {
    name: "tokenize with a tokenizer.json Split pattern (a|a)*b returns",
    args: ["tokenize", "$T/m", "--text", "a".repeat(5000)],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "gpt2", {
        "tokenizer.json": (t) =>
          void (t.pre_tokenizer = {
            type: "Sequence",
            pretokenizers: [
              { type: "Split", pattern: { Regex: "(a|a)*b" }, behavior: "Isolated", invert: false },
              { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
            ],
          }),
      }),
    code: 0,
    timeoutMs: 30_000,
  },
  {
    name: "a tiktoken '#pattern' that is not a regex names the file and line",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      defaultDir(`${tmp}/m`, undefined, (t) => t.replace(/^#pattern .*$/m, "#pattern (a|")),
    code: 1,
    error: /^error: .*m\/tokenizer\.tiktoken: line 1: pattern is not usable/,
  },
  // Item 16: one line, naming the file; a BOM is accepted.
  {
    name: "config.json that is not valid JSON (multi-line) gives one line",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: async (tmp) => {
      await hfDir(`${tmp}/m`, "llama_gqa");
      await Deno.writeTextFile(`${tmp}/m/config.json`, '{\n  "vocab_size": 400,\n  "x": oops\n}\n');
    },
    code: 1,
    error: /^error: .*m\/config\.json: is not valid JSON: /,
  },
  {
    name: "tokenizer.json that is cut short gives one line",
    args: ["tokenize", "$T/m", "--text", "a"],
    setup: async (tmp) => {
      await hfDir(`${tmp}/m`, "llama_gqa");
      const text = await Deno.readTextFile(`${tmp}/m/tokenizer.json`);
      await Deno.writeTextFile(`${tmp}/m/tokenizer.json`, text.slice(0, 700));
    },
    code: 1,
    error: /^error: .*m\/tokenizer\.json: is not valid JSON: /,
  },
  {
    name: "config.json with a UTF-8 BOM is accepted",
    args: ["generate", "$T/m", "--prompt", "a", "-n", "2"],
    setup: async (tmp) => {
      await hfDir(`${tmp}/m`, "llama_gqa");
      const text = await Deno.readTextFile(`${tmp}/m/config.json`);
      await Deno.writeTextFile(`${tmp}/m/config.json`, "\ufeff" + text);
    },
    code: 0,
  },
  // Item 17: generation defaults are checked at load, naming the file.
  {
    name: "generation_config.json with temperature -1",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "generation_config.json": (g) => Object.assign(g, { do_sample: true, temperature: -1 }),
      }),
    code: 1,
    error: /^error: .*m\/generation_config\.json: temperature must be a finite number ≥ 0, got -1$/,
  },
  {
    name: "generation_config.json with top_p 'high'",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: (tmp) =>
      hfDir(`${tmp}/m`, "llama_gqa", {
        "generation_config.json": (g) => Object.assign(g, { do_sample: true, top_p: "high" }),
      }),
    code: 1,
    error: /^error: .*m\/generation_config\.json: top_p must be in \(0, 1\], got "high"$/,
  },
  {
    name: "model.safetensors __metadata__.generation with top_k -3",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: async (tmp) => {
      await scriptedDir(`${tmp}/m`);
      await editSafetensorsHeader(`${tmp}/m/model.safetensors`, (h) => {
        const meta = (h.__metadata__ ?? {}) as Record<string, string>;
        meta.generation = JSON.stringify({ top_k: -3 });
        h.__metadata__ = meta;
      });
    },
    code: 1,
    error: /^error: .*m\/model\.safetensors.*top_k/,
  },
  // Item 18: a safetensors dtype that is an Object.prototype name.
  {
    name: "model.safetensors with dtype 'toString'",
    args: ["generate", "$T/m", "--prompt", "a"],
    setup: async (tmp) => {
      await scriptedDir(`${tmp}/m`);
      await editSafetensorsHeader(`${tmp}/m/model.safetensors`, (h) => {
        const name = Object.keys(h).find((k) => k !== "__metadata__")!;
        (h[name] as { dtype: string }).dtype = "toString";
      });
    },
    code: 1,
    error: /^error: .*m\/model\.safetensors: tensor '.*': unsupported dtype "toString"/,
  },
];

Deno.test("gollm: every bad model, config or tokenizer file gives one error line naming it", async (t) => {
  await runCases(t, CASES);
});
