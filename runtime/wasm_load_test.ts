/**
 * `readAndCheck()` (wasm_load.ts): the pipelined read and NaN/Inf scan of a GGUF's data
 * section, with reads of 4 KiB in 3 parts so that tensors and scanned words sit on every side
 * of a chunk edge and of a part edge. Files: the shipped default model quantised to F16 and Q8_0 by
 * `quantizeModel`. Negative control: the unedited files pass, and the data read equals the
 * file's bytes.
 */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import { readGguf } from "../formats/gguf/parse.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { ROOT } from "../tests/assets.ts";
import { readAndCheck } from "./wasm_load.ts";

const CHUNK = 4096;

/** The parts the data section is read in at once (3: two part edges inside the file). */
const PARTS = 3;

/** Reads `file` into a fresh memory with 4 KiB reads in `parts` parts; returns the bytes read. */
async function check(file: string, parts = PARTS): Promise<Uint8Array> {
  const g = await readGguf(file);
  const size = g.fileSize - g.dataOffset;
  const start = 64;
  const memory = new WebAssembly.Memory({ initial: Math.ceil((start + size) / 65536) + 1 });
  const dst = new Uint8Array(memory.buffer, start, size);
  await readAndCheck(file, g, memory, dst, CHUNK, parts);
  return dst.slice();
}

Deno.test("readAndCheck() reads the data section and names the tensor of a NaN/Inf anywhere", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const type of ["F16", "Q8_0"]) {
      const file = `${dir}/model.${type}.gguf`;
      await quantizeModel(`${ROOT}models/default`, file, type, { threads: 1 });
      const bytes = await Deno.readFile(file);
      const g = await readGguf(file);
      for (const parts of [1, 2, PARTS]) {
        const read = await check(file, parts);
        assert.deepEqual(
          read,
          bytes.subarray(g.dataOffset),
          `${type}, ${parts} part(s): data read`,
        );
      }
      // Where readAndCheck cuts the data section into parts (64-byte multiples).
      const size = g.fileSize - g.dataOffset;
      const per = Math.ceil(size / PARTS / 64) * 64;
      const big = g.tensors.filter((t) => t.type.name === type);
      assert.ok(big.length > 2, `${type}: tensors of the type`);
      // The f16 word to break: an F16 value, or a Q8_0 block's d (byte 0 of 34).
      const word = type === "F16" ? 2 : 34;
      const holding = (cut: number) => big.find((t) => t.offset < cut && cut < t.offset + t.nbytes);
      const parted = [holding(per), holding(2 * per)].filter((t) => t !== undefined);
      assert.ok(parted.length > 0, `${type}: a tensor of the type holds a part edge`);
      for (const t of new Set([big[0], big[big.length >> 1], big[big.length - 1], ...parted])) {
        const n = t.nbytes / word;
        // First and last word, the words on both sides of a 4 KiB chunk edge and of a part
        // edge when the tensor holds one.
        const at = [0, n - 1];
        const edge = Math.floor((t.offset + t.nbytes / 2) / CHUNK) * CHUNK;
        const near = Math.ceil((edge - t.offset) / word);
        at.push(near - 1, near);
        for (const cut of [per, 2 * per]) {
          if (cut <= t.offset || cut >= t.offset + t.nbytes) continue;
          const i = Math.ceil((cut - t.offset) / word);
          at.push(i - 1, i);
        }
        for (const i of at) {
          for (const bits of [0x7e00, 0xfc00]) { // NaN, -Inf
            const bad = bytes.slice();
            new DataView(bad.buffer).setUint16(t.fileOffset + i * word, bits, true);
            const badFile = `${dir}/bad.gguf`;
            await Deno.writeFile(badFile, bad);
            await assert.rejects(
              () => check(badFile),
              (e) => e instanceof FormatError && e.message.includes(`'${t.name}'`),
              `${type} ${t.name} word ${i} of ${n}: 0x${bits.toString(16)}`,
            );
          }
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
