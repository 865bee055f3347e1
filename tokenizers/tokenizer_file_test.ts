/**
 * loadTokenizer (tokenizers/tokenizer_file.ts) and the safe readers (tokenizers/read_file.ts):
 * only regular files are opened and every problem with the path is one FormatError line.
 */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import { loadTokenizer } from "./tokenizer_file.ts";
import { readLlama2cTokenizer } from "./sentencepiece.ts";
import { ROOT } from "../tests/assets.ts";

async function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
}

Deno.test("loadTokenizer() says what is wrong with a path that is not a regular file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gollm_tokfile_" });
  try {
    await Deno.writeTextFile(`${dir}/tokenizer.tiktoken`, "YQ== 0\n");
    await rejectsWith(
      loadTokenizer("tokenizer.tiktoken/", dir),
      /tokenizer\.tiktoken\/: tokenizer file path ends with '\/'; it must name a file/,
    );
    await Deno.mkdir(`${dir}/dir.tiktoken`);
    await rejectsWith(
      loadTokenizer("dir.tiktoken", dir),
      /cannot read tokenizer file: it is a directory/,
    );
    await rejectsWith(
      loadTokenizer("/dev/zero/x.bin", dir),
      /does not exist \(a parent in the path is a file\)/,
    );
    await rejectsWith(
      loadTokenizer("missing.bin", dir),
      /missing\.bin: tokenizer file does not exist/,
    );
    // A FIFO is never opened (reading it would block forever).
    const fifo = `${dir}/fifo.tiktoken`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    if (mk.success) {
      await rejectsWith(
        loadTokenizer(fifo, dir),
        /cannot read tokenizer file: it is a FIFO, not a regular file/,
      );
    } else console.log("skip the FIFO case: mkfifo failed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readLlama2cTokenizer() says a file that is not a tokenizer.bin is not one", async () => {
  await rejectsWith(
    readLlama2cTokenizer(`${ROOT}README.md`),
    /README\.md: not a llama2\.c tokenizer\.bin file: its header max_token_length is \d+, expected 0\.\.\d+/,
  );
  await rejectsWith(readLlama2cTokenizer("/dev/zero"), /not a regular file/);
});
