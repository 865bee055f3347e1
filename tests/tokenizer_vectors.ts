/**
 * Test helper: reads llama.cpp's tokenizer test vectors (tests/test-tokenizer-0 format).
 *
 * @module
 */

/**
 * Reads a `.inp`/`.out` pair: inputs split by `"\n__ggml_vocab_test__\n"`, one line of
 * space-separated ids per input. test-tokenizer-0 tokenizes with add_special = false, so the
 * ids carry no BOS.
 *
 * @param inp Path of the `.inp` file.
 * @param out Path of the `.out` file.
 * @returns `[text, ids]` per case.
 */
export async function readVectors(inp: string, out: string): Promise<[string, number[]][]> {
  const inputs = (await Deno.readTextFile(inp)).split("\n__ggml_vocab_test__\n");
  if (inputs.at(-1) === "") inputs.pop(); // the file ends with a separator
  const lines = (await Deno.readTextFile(out)).split("\n");
  return inputs.map((text, i) => [
    text,
    lines[i].trim() === "" ? [] : lines[i].trim().split(/\s+/).map(Number),
  ]);
}
