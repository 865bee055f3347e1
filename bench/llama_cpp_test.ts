/**
 * The peer harness end to end on a real model nobody here wrote (Karpathy's stories260K,
 * GGUF F32): llama.cpp's greedy text equals the published one, its logits equal gollm's
 * reference forward, its quantiser writes the types asked for, and the bench protocol
 * decodes the same greedy ids in both engines. No test times anything.
 */
import assert from "node:assert/strict";
import { createReference } from "../runtime/reference.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { readGguf } from "../formats/gguf/parse.ts";
import type { ModelConfig } from "../core/config.ts";
import type { F32Weights as Weights } from "../core/weights.ts";
import { GollmError } from "../core/errors.ts";
import { assertClose } from "../tests/assert_close.ts";
import { ASSETS, haveFiles, publishedStoriesText } from "../tests/assets.ts";
import { gollmBench } from "./gollm.ts";
import {
  installPeer,
  llamaCppBench,
  llamaCppGenerate,
  llamaCppLogits,
  llamaCppQuantize,
  PeerError,
} from "./llama_cpp.ts";
import { PEER } from "./peer_for_tests.ts";
import { argmax } from "./protocol.ts";
import { RunnerError } from "./subprocess.ts";

const DIR = `${ASSETS}/stories260K`;
const GGUF = `${DIR}/stories260K.gguf`;
const haveAssets = haveFiles("llama.cpp stories260K tests", [GGUF, `${DIR}/stories260K.md`]);
const ignore = !haveAssets || PEER === null;
const peerDir = PEER ?? "";

/** gollm's reference forward, one position at a time: (n, vocab) logits. */
function referenceLogits(config: ModelConfig, weights: Weights, tokens: number[]): Float32Array {
  const ref = createReference(config, weights);
  const out = new Float32Array(tokens.length * config.vocab_size);
  tokens.forEach((t, pos) => out.set(ref.forward([t], pos), pos * config.vocab_size));
  return out;
}

/** BOS + "Once upon a time" in stories260K's vocabulary. */
const PROMPT = [1, 403, 407, 261, 378];

Deno.test({
  name: "llamaCppGenerate() continues 'Once upon a time' with the published stories260K text",
  ignore,
  fn: async () => {
    const expected = await publishedStoriesText();
    const prompt = "Once upon a time";
    assert.ok(expected.startsWith(prompt));
    const g = await llamaCppGenerate(GGUF, prompt, 200, { peerDir });
    assert.deepEqual(g.promptIds, PROMPT);
    assert.equal(g.ids.length, 200);
    assert.ok(g.text.length > 400, `only ${g.text.length} chars generated`);
    // 4 prompt + 200 generated tokens are fewer than the 256 published steps: a proper prefix.
    assert.equal(prompt + g.text, expected.slice(0, prompt.length + g.text.length));
  },
});

Deno.test({
  name: "llamaCppLogits() equals gollm's reference forward on stories260K within 1e-3",
  ignore,
  fn: async () => {
    const ck = await loadGguf(GGUF);
    const tokens = [...PROMPT, 432, 383]; // + ", there"
    const peer = await llamaCppLogits(GGUF, tokens, { peerDir });
    assert.equal(peer.vocabSize, ck.config.vocab_size);
    const ours = referenceLogits(ck.config, ck.weights, tokens);
    assertClose(peer.logits, ours, 1e-3, "llama.cpp vs gollm reference");
    for (let i = 0; i < tokens.length; i++) {
      const row = (x: Float32Array) => x.subarray(i * peer.vocabSize, (i + 1) * peer.vocabSize);
      assert.equal(argmax(row(peer.logits)), argmax(row(ours)), `argmax at position ${i}`);
    }
    // Negative control: the same comparison fails when gollm pairs RoPE dims the other way.
    const wrong = referenceLogits({ ...ck.config, rope_style: "half" }, ck.weights, tokens);
    assert.throws(() => assertClose(peer.logits, wrong, 1e-3), /max \|diff\|/);
  },
});

Deno.test({
  name: "llamaCppQuantize() writes llama.cpp's Q8_0, whose logits move away from the F32 reference",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const out = `${dir}/stories260K-q8_0.gguf`;
      await llamaCppQuantize(GGUF, out, "q8_0", { peerDir, threads: 1 });
      const g = await readGguf(out);
      const type = (name: string) => g.tensors.find((t) => t.name === name)?.type.name;
      assert.equal(type("blk.0.attn_q.weight"), "Q8_0");
      assert.equal(type("blk.0.attn_norm.weight"), "F32"); // 1-D tensors stay F32
      // 172-wide ffn_down rows are not a multiple of 32: llama.cpp falls back to another type.
      assert.notEqual(type("blk.0.ffn_down.weight"), "Q8_0");
      // Negative control of the parity test above: quantised weights give other logits.
      const ck = await loadGguf(GGUF);
      const ours = referenceLogits(ck.config, ck.weights, PROMPT);
      const q = await llamaCppLogits(out, PROMPT, { peerDir });
      assert.throws(() => assertClose(q.logits, ours, 1e-3), /max \|diff\|/);
      assertClose(q.logits, ours, 0.5, "Q8_0 stays near F32");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "llamaCppQuantize() refuses an unknown type and a non-GGUF input, leaving no file",
  ignore: PEER === null,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/in.gguf`, "not a gguf file");
      await assert.rejects(
        llamaCppQuantize(`${dir}/in.gguf`, `${dir}/out.gguf`, "Q9_9", { peerDir }),
        (e) => e instanceof PeerError && /type 'Q9_9' is not one of .*Q4_K_M/.test(e.message),
      );
      await assert.rejects(
        llamaCppQuantize(`${dir}/in.gguf`, `${dir}/out.gguf`, "Q8_0", { peerDir }),
        (e) =>
          e instanceof RunnerError && !e.message.includes("\n") &&
          e.message.startsWith(`llama.cpp quantize on ${dir}/in.gguf: llama_model_quantize`),
      );
      const left = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.deepEqual(left, ["in.gguf"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "llamaCppBench() and gollmBench() decode the same greedy ids from BOS on stories260K",
  ignore,
  fn: async () => {
    const protocol = { threads: 1, decodeSteps: 24, prefillTokens: 32, runs: 2, warmup: 1 };
    const peer = await llamaCppBench(GGUF, protocol, { peerDir });
    const ours = await gollmBench(GGUF, protocol);
    // Greedy from BOS is the published story: "Once upon a time, there was a little girl..."
    const ck = await loadGguf(GGUF);
    const ref = createReference(ck.config, ck.weights);
    const expected: number[] = [];
    for (let pos = 0, id = 1; pos < protocol.decodeSteps; pos++) {
      id = argmax(ref.forward([id], pos));
      expected.push(id);
    }
    assert.deepEqual(expected.slice(0, 4), [403, 407, 261, 378]);
    for (const r of [peer, ours]) {
      assert.deepEqual(r.greedyIds, expected, r.engine);
      assert.equal(r.decodeMs.length, 2);
      assert.equal(r.prefillMs.length, 2);
      assert.equal(r.threads, 1);
      assert.ok(Number.isFinite(r.decodeTokS) && Number.isFinite(r.prefillTokS), r.engine);
      assert.ok(r.peakRssBytes > 0, `${r.engine} peak RSS`);
    }
    assert.equal(peer.threadsUsed, 1);
    assert.equal(peer.engine, "llama.cpp");
    assert.equal(ours.engine, "gollm");
  },
});

Deno.test({
  name: "llamaCppLogits() reports a missing file and an empty token list in one line",
  fn: async () => {
    await assert.rejects(
      llamaCppLogits("/nonexistent/m.gguf", [1], { peerDir: "/unused" }),
      (e) =>
        e instanceof PeerError && e.message === "llamaCppLogits: /nonexistent/m.gguf is not a file",
    );
    await assert.rejects(
      llamaCppLogits(GGUF, [], { peerDir: "/unused" }),
      (e) => e instanceof GollmError && /tokens is empty/.test(e.message),
    );
  },
});

Deno.test({
  name: "installPeer() fails in one line when the npm registry is unreachable, leaving nothing",
  fn: async (t) => {
    const npm = await new Deno.Command("npm", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output().then((o) => o.success).catch(() => false);
    if (!npm) {
      console.log("skip: npm is not installed");
      return;
    }
    const dir = await Deno.makeTempDir();
    const cache = await Deno.makeTempDir(); // an empty npm cache: nothing can come from it
    try {
      // A closed port on the loopback: npm's connection is refused at once.
      const npmFlags = ["--fetch-retries=0", `--cache=${cache}`];
      await assert.rejects(
        installPeer({ dir, registry: "http://127.0.0.1:9/", npmFlags }),
        (e) =>
          e instanceof PeerError && !e.message.includes("\n") &&
          /^installPeer: npm install of node-llama-cpp failed .*ECONNREFUSED/.test(e.message),
      );
      assert.deepEqual([...Deno.readDirSync(dir)], [], "a half-installed folder was left");
      await t.step("installIfMissing: false fails without running npm", async () => {
        await assert.rejects(
          installPeer({ dir, installIfMissing: false }),
          /installPeer: not installed in .* \(run: deno task peers:install\)/,
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(cache, { recursive: true });
    }
  },
});
