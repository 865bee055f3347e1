/** checkTokenizerFits (tokenizers/fit.ts): larger tokenizers rejected naming the file, smaller
 * ones padded so that the model's extra ids decode to nothing, exact sizes for GGUF. */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import { checkTokenizerFits } from "./fit.ts";
import { StreamDecoder } from "./tokenizer.ts";
import { TiktokenTokenizer } from "./tiktoken.ts";

Deno.test("checkTokenizerFits() rejects a tokenizer with more ids than the model, naming the file", async () => {
  const gpt2 = await TiktokenTokenizer.builtin("gpt2");
  assert.throws(
    () => checkTokenizerFits(gpt2, 4096, "m/config.yaml (tokenizer: gpt2)"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message ===
        "m/config.yaml (tokenizer: gpt2): the tokenizer has 50257 ids but the model's " +
          "vocabulary has 4096 rows (ids 4096..50256 could not be embedded)",
  );
  assert.equal(checkTokenizerFits(gpt2, 50257, "x"), gpt2);
  assert.throws(
    () => checkTokenizerFits(gpt2, 50304, "x.gguf", { exact: true }),
    /one token per row/,
  );
});

Deno.test("checkTokenizerFits() pads a smaller tokenizer: padding ids decode to nothing", async () => {
  const gpt2 = await TiktokenTokenizer.builtin("gpt2");
  const tok = checkTokenizerFits(gpt2, 50304, "x");
  assert.equal(tok.vocabSize, 50304);
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  assert.equal(tok.decode([15496, 50300, 995]), "Hello world");
  assert.equal(tok.tokenPiece(50300), "<unused:50300>");
  assert.equal(tok.tokenBytes(50303).length, 0);
  assert.throws(() => tok.tokenBytes(50304), RangeError);
  const d = new StreamDecoder(tok);
  assert.equal(d.push(15496) + d.push(50257) + d.push(995) + d.flush(), "Hello world");
  assert.deepEqual(tok.toFile(), gpt2.toFile());
});
