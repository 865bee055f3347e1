/**
 * verifyDraft() against the exact math of Leviathan et al. 2023 (Algorithm 1, Theorem 3.5):
 * scripted uniform draws check the acceptance threshold min(1, p/q) and the residual
 * norm(max(0, p - q)); integrating the draws over a grid gives the output distribution,
 * which must be p for any q. Plus checkDraftVocabulary().
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { byteTokenizer, tinyConfig } from "../tests/model_fixtures.ts";
import { Sampler } from "./sampler.ts";
import {
  checkDraftVocabulary,
  type TokenDistribution,
  verifyDraft,
  type VerifySampler,
} from "./speculative.ts";
import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";

const P = [0.1, 0.2, 0.3, 0.4]; // the target's distribution over a 4-token vocabulary
const Q: TokenDistribution = { ids: [0, 1, 2, 3], probs: [0.4, 0.3, 0.2, 0.1] }; // the draft's

/** k + 1 rows whose softmax at temperature 1 is P each. */
function rows(k: number): Float32Array {
  const out = new Float32Array((k + 1) * P.length);
  for (let i = 0; i <= k; i++) P.forEach((p, j) => out[i * P.length + j] = Math.log(p));
  return out;
}

/** A real sampler (temperature 1, no filtering) whose uniform draws come from a script. */
function scripted(draws: number[]): VerifySampler & { used: () => number } {
  const real = new Sampler({ temperature: 1, topP: 1, seed: 1 });
  let used = 0;
  return {
    distribution: (l, r) => real.distribution(l, r),
    sample: (l, r) => real.sample(l, r),
    random: () => {
      if (used >= draws.length) throw new Error("the script ran out of draws");
      return draws[used++];
    },
    used: () => used,
  };
}

Deno.test("verifyDraft() accepts a draft exactly when u < p(d) / q(d)", () => {
  const ratio = P[1] / Q.probs[1]; // 2/3: draft 1 is over-proposed
  const below = scripted([ratio - 1e-6]);
  assert.deepEqual(verifyDraft(rows(1).subarray(0, 8), [1], [Q], below).accepted, 1);
  const above = scripted([ratio + 1e-6, 0.5]);
  assert.equal(verifyDraft(rows(1).subarray(0, 8), [1], [Q], above).accepted, 0);
  // p(3) = 0.4 >= q(3) = 0.1: accepted without a draw.
  const sure = scripted([]);
  assert.equal(verifyDraft(rows(1).subarray(0, 8), [3], [Q], sure).accepted, 1);
  assert.equal(sure.used(), 0);
});

Deno.test("verifyDraft() resamples a rejection from norm(max(0, p - q))", () => {
  // max(0, p - q) = [0, 0, 0.1, 0.3] -> [0, 0, 0.25, 0.75]: u < 0.25 gives 2, else 3.
  const reject = 0.99; // > p(1)/q(1)
  for (const [u, want] of [[0.001, 2], [0.249, 2], [0.251, 3], [0.999, 3]]) {
    const r = verifyDraft(rows(1).subarray(0, 8), [1], [Q], scripted([reject, u]));
    assert.deepEqual(r, { accepted: 0, tokens: [want] }, `u = ${u}`);
  }
  // One-hot q (a deterministic proposer): p with the draft removed, renormalised.
  // draft 3 rejected (u >= p(3) = 0.4): residual [0.1, 0.2, 0.3] / 0.6.
  for (const [u, want] of [[0.1, 0], [0.2, 1], [0.49, 1], [0.51, 2]]) {
    const r = verifyDraft(rows(1).subarray(0, 8), [3], null, scripted([0.5, u]));
    assert.deepEqual(r, { accepted: 0, tokens: [want] }, `u = ${u}`);
  }
});

Deno.test("verifyDraft() appends a bonus token from the last row when every draft is accepted", () => {
  // The scripted sampler's own PRNG (seed 1) is untouched until the bonus draw.
  const bonus = new Sampler({ temperature: 1, topP: 1, seed: 1 }).sample(rows(0));
  const r = verifyDraft(rows(2), [3, 3], [Q, Q], scripted([]));
  assert.deepEqual(r, { accepted: 2, tokens: [3, 3, bonus] });
});

/**
 * The probability of each output token of one verify step with one draft d ~ q,
 * integrated over a grid of G midpoints for each uniform draw: P(out = x) =
 * Σ_d q(d) [acc(d) 1{x = d} + (1 - acc(d)) res_d(x)], with acc(d) and res_d measured by
 * running verifyDraft, not computed.
 */
function outputDistribution(
  q: TokenDistribution | null,
  draftIds: number[],
  drawnFrom: TokenDistribution | null = q,
): number[] {
  const G = 1000, out = new Array(P.length).fill(0);
  for (const d of draftIds) {
    const qd = drawnFrom ? drawnFrom.probs[Array.from(drawnFrom.ids).indexOf(d)] : 1;
    let accepted = 0;
    for (let g = 0; g < G; g++) {
      const s = scripted([(g + 0.5) / G, 0.5]);
      if (verifyDraft(rows(1).subarray(0, 8), [d], q ? [q] : null, s).accepted === 1) accepted++;
    }
    const acc = accepted / G;
    out[d] += qd * acc;
    if (acc === 1) continue;
    for (let g = 0; g < G; g++) {
      const s = scripted([1 - 1e-12, (g + 0.5) / G]); // always reject, residual draw on the grid
      const x = verifyDraft(rows(1).subarray(0, 8), [d], q ? [q] : null, s).tokens[0];
      out[x] += qd * (1 - acc) / G;
    }
  }
  return out;
}

Deno.test("verifyDraft() outputs exactly p for any q (integrated over its draws)", () => {
  const cases: [string, TokenDistribution | null, number[]][] = [
    ["q = [0.4, 0.3, 0.2, 0.1]", Q, [0, 1, 2, 3]],
    ["q concentrated off p's mode", { ids: [0, 2], probs: [0.9, 0.1] }, [0, 2]],
    ["one-hot q (n-gram draft of token 0)", null, [0]],
    ["one-hot q (n-gram draft of token 3)", null, [3]],
  ];
  for (const [name, q, ids] of cases) {
    const got = outputDistribution(q, ids);
    got.forEach((x, i) =>
      assert.ok(Math.abs(x - P[i]) < 2e-3, `${name}: P(${i}) = ${x}, p = ${P[i]}`)
    );
  }
  // Verifying as one-hot is exact whatever the drafts were drawn from (accept with p(d),
  // else p without d): the output is p, only acceptance is lower than with the true q.
  const oneHot = outputDistribution(null, [0, 1, 2, 3], Q);
  oneHot.forEach((x, i) => assert.ok(Math.abs(x - P[i]) < 2e-3, `one-hot: P(${i}) = ${x}`));
  // Negative control: drafts drawn from q but verified against a misreported q (uniform)
  // are accepted with the wrong ratio: the output is not p (P(0) = 0.4 · 0.4 = 0.16).
  const uniform = { ids: [0, 1, 2, 3], probs: [0.25, 0.25, 0.25, 0.25] };
  const wrong = outputDistribution(uniform, [0, 1, 2, 3], Q);
  assert.ok(Math.abs(wrong[0] - 0.16) < 2e-3, `misreported q: ${wrong}`);
});

Deno.test("verifyDraft() with a greedy sampler accepts the argmax prefix and draws nothing", () => {
  const V = 5;
  const argmaxes = [4, 1, 1, 0];
  const logits = new Float32Array(argmaxes.length * V);
  argmaxes.forEach((a, i) => logits[i * V + a] = 3);
  const greedySampler = new Sampler({ temperature: 0, seed: 1 });
  const greedy: VerifySampler = {
    distribution: (l, r) => greedySampler.distribution(l, r),
    sample: (l, r) => greedySampler.sample(l, r),
    random: () => assert.fail("greedy verification must not draw"),
  };
  assert.deepEqual(verifyDraft(logits, [4, 1, 1], null, greedy), {
    accepted: 3,
    tokens: [4, 1, 1, 0],
  });
  assert.deepEqual(verifyDraft(logits, [4, 2, 1], null, greedy), { accepted: 1, tokens: [4, 1] });
  const q = [{ ids: [3], probs: [1] }, { ids: [1], probs: [1] }, { ids: [1], probs: [1] }];
  assert.deepEqual(verifyDraft(logits, [3, 1, 1], q, greedy), { accepted: 0, tokens: [4] });
});

Deno.test("verifyDraft() penalises each row with the history plus the drafts before it", () => {
  // Two equal rows where 7 leads 8 by a little; a repetition penalty of 2 on 7 flips it.
  const V = 10, logits = new Float32Array(2 * V);
  for (const i of [0, 1]) {
    logits[i * V + 7] = 2;
    logits[i * V + 8] = 1.5;
  }
  const s = new Sampler({ temperature: 0, repeatPenalty: 2, seed: 1 });
  const history = [1, 2];
  // Row 0 sees [1, 2]: 7 wins and is accepted; row 1 sees [1, 2, 7]: 7 is penalised to 1.
  assert.deepEqual(verifyDraft(logits.subarray(0, 2 * V), [7], null, s, history), {
    accepted: 1,
    tokens: [7, 8],
  });
  assert.deepEqual(history, [1, 2], "history is restored");
});

Deno.test("verifyDraft() refuses malformed input with RangeErrors", () => {
  const s = new Sampler({ seed: 1 });
  assert.throws(() => verifyDraft(new Float32Array(7), [1], null, s), /not 2 rows/);
  assert.throws(() => verifyDraft(rows(1), [4], null, s), /drafts\[0\] = 4 is outside/);
  assert.throws(
    () => verifyDraft(rows(1), [1], [{ ids: [0], probs: [1] }], s),
    /probability 0 under its own q/,
  );
});

Deno.test("checkDraftVocabulary() names the first difference between two vocabularies", () => {
  const c = tinyConfig("llama");
  const tok = byteTokenizer();
  const target = { config: c, tokenizer: tok, checkpoint: { path: "models/target" } };
  checkDraftVocabulary(target, { ...target, tokenizer: byteTokenizer() }); // equal: ok
  const small = { config: tinyConfig("llama", { vocab_size: 200 }), tokenizer: null };
  assert.throws(
    () => checkDraftVocabulary(target, { ...small, checkpoint: { path: "runs/d" } }),
    (e: Error) =>
      e instanceof GollmError &&
      e.message === "draft model runs/d: its vocabulary differs from the target's " +
          "(models/target): vocab_size 200 vs 258; a draft model needs the target's tokenizer",
  );
  // Same size, one token different: byte 0x41 spelled as 'B'.
  const ranks = Array.from({ length: 256 }, (_, b) => new Uint8Array([b === 0x41 ? 0x42 : b]));
  ranks[0x42] = new Uint8Array([0x41]);
  const swapped = TiktokenTokenizer.fromRanks(
    ranks,
    new Map([["<|bos|>", 256], ["<|eos|>", 257]]),
  );
  assert.throws(
    () =>
      checkDraftVocabulary(target, { config: c, tokenizer: swapped, checkpoint: { path: "d" } }),
    /token 65 is "B" vs "A"/,
  );
});
