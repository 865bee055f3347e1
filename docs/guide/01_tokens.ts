/**
 * Step 1 of the guide: tokens. Byte-pair encoding (BPE) written out in a few lines, run on
 * the real GPT-2 and Llama-3 vocabularies, and checked id for id against gollm's tokenizers
 * (tokenizers/tiktoken.ts, tokenizers/sentencepiece.ts).
 *
 * Run: `deno run -A docs/guide/01_tokens.ts` (page: docs/guide/01_tokens.md).
 *
 * @module
 */
import { loadHfTokenizer } from "../../tokenizers/hf_tokenizer.ts";
import { SentencePieceTokenizer } from "../../tokenizers/sentencepiece.ts";
import { TiktokenTokenizer } from "../../tokenizers/tiktoken.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";
import { ASSETS, check, control, isFile, loadGuideModel, section, show, table } from "./lib.ts";

// #region bpe
/**
 * Byte-pair encoding of one piece, as tiktoken does it (`_byte_pair_merge`): start with one
 * part per byte; while some adjacent pair joins into a token of the vocabulary, join the pair
 * whose token has the lowest rank (the leftmost on a tie). Each final part is one token, its
 * rank is its id. Parts are byte strings (one char per byte) so they can key a Map.
 */
export function bpe(piece: Uint8Array, ranks: Map<string, number>, log?: string[]): number[] {
  const parts = Array.from(piece, (b) => String.fromCharCode(b)); // (n) one part per byte
  for (;;) {
    let best = -1, bestRank = Infinity;
    for (let i = 0; i + 1 < parts.length; i++) {
      const rank = ranks.get(parts[i] + parts[i + 1]);
      if (rank !== undefined && rank < bestRank) [best, bestRank] = [i, rank];
    }
    if (best < 0) break; // no adjacent pair is a token: done
    log?.push(`${quote(parts[best])} + ${quote(parts[best + 1])} -> rank ${bestRank}`);
    parts.splice(best, 2, parts[best] + parts[best + 1]);
  }
  return parts.map((p) => ranks.get(p)!);
}

/** Pre-tokenize with the vocabulary's regex, then run {@linkcode bpe} on each piece's bytes. */
export function encode(text: string, pattern: RegExp, ranks: Map<string, number>): number[] {
  const ids: number[] = [];
  for (const [piece] of text.matchAll(pattern)) ids.push(...bpe(utf8.encode(piece), ranks));
  return ids;
}
// #endregion bpe

const utf8 = new TextEncoder();

/** A part (bytes as one char each) shown as text, `" t"`; non-ASCII bytes as `\xNN`. */
function quote(part: string): string {
  const text = [...part].map((c) =>
    c.charCodeAt(0) < 0x80 ? c : `\\x${c.charCodeAt(0).toString(16)}`
  );
  return JSON.stringify(text.join("")).replaceAll("\\\\x", "\\x");
}

/** The merge table of a tiktoken-style tokenizer: token bytes → rank (= id), no specials. */
function ranksOf(tok: TiktokenTokenizer): Map<string, number> {
  const specials = new Set([...tok.specialTokens.values(), ...tok.addedTokens.values()]);
  const ranks = new Map<string, number>();
  for (let id = 0; id < tok.vocabSize; id++) {
    const bytes = tok.tokenBytes(id);
    if (specials.has(id) || bytes.length === 0) continue;
    const key = String.fromCharCode(...bytes);
    if (!ranks.has(key)) ranks.set(key, id);
  }
  return ranks;
}

// #region sentencepiece
/**
 * SentencePiece-style BPE as llama2.c's `encode()` runs it: a space is `▁` and one is put in
 * front of the text (the dummy prefix); start with one part per character (a character that
 * is not in the vocabulary becomes its UTF-8 bytes as `<0xNN>` tokens); while some adjacent
 * pair joins into a piece of the vocabulary, join the pair whose piece has the HIGHEST score.
 */
export function spmEncode(text: string, pieces: readonly string[], scores: ArrayLike<number>) {
  const id = new Map(pieces.map((p, i) => [p, i] as const).reverse()); // first id of a piece
  const ids: number[] = [];
  for (const ch of (" " + text).replaceAll(" ", "\u2581")) {
    if (id.has(ch)) ids.push(id.get(ch)!);
    else for (const b of utf8.encode(ch)) ids.push(id.get(`<0x${hex(b)}>`)!);
  }
  for (;;) {
    let best = -1, bestScore = -Infinity, bestId = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const merged = id.get(pieces[ids[i]] + pieces[ids[i + 1]]);
      if (merged !== undefined && scores[merged] > bestScore) {
        [best, bestScore, bestId] = [i, scores[merged], merged];
      }
    }
    if (best < 0) return ids;
    ids.splice(best, 2, bestId);
  }
}
// #endregion sentencepiece

const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, "0");

const TEXTS = [
  "Hello world, it's 2024!",
  "The KV cache memoises keys and values.",
  "Grüße aus Köln 🙂 東京",
  "    for (let i = 0; i < n; i++) sum += x[i];\n",
];

/** GPT-2 from OpenAI's encoder.json (shared assets; id = rank = merge order), else js-tiktoken. */
async function gpt2(): Promise<[TiktokenTokenizer, string]> {
  const dir = `${ASSETS}/tokenizers/gpt2`;
  if (!isFile(`${dir}/encoder.json`)) {
    return [await TiktokenTokenizer.builtin("gpt2"), "js-tiktoken's gpt2 ranks"];
  }
  const encoder = JSON.parse(await Deno.readTextFile(`${dir}/encoder.json`));
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(encoder as Record<string, number>)) tokens[id] = t;
  const eot = new Map([["<|endoftext|>", 50256]]);
  const builtin = await TiktokenTokenizer.builtin("gpt2"); // only for its regex
  const tok = TiktokenTokenizer.fromByteLevelBpe(tokens, eot, builtin.pattern, { bosId: null });
  return [tok, "OpenAI's encoder.json"];
}

async function main() {
  const [g, gFrom] = await gpt2();
  const llama3Path = `${ASSETS}/tokenizers/llama3/tokenizer.json`;
  const l3 = isFile(llama3Path) ? await loadHfTokenizer(llama3Path) : null;
  const vocabs: [string, TiktokenTokenizer][] = [["GPT-2", g]];
  if (l3 instanceof TiktokenTokenizer) vocabs.push(["Llama-3", l3]);

  section("vocabularies");
  console.log(`GPT-2 (${gFrom}): ${g.vocabSize} ids`);
  if (l3) console.log(`Llama-3 (Meta's tokenizer.json): ${l3.vocabSize} ids`);
  else console.log(`Llama-3: skipped, ${llama3Path} is absent`);
  const ranks = new Map(vocabs.map(([name, tok]) => [name, ranksOf(tok)]));
  for (const [name, tok] of vocabs) {
    const r = ranks.get(name)!;
    const longest = [...r.keys()].reduce((a, b) => (b.length > a.length ? b : a));
    console.log(
      `${name}: ${r.size} mergeable tokens (256 single bytes + ${r.size - 256} merges), ` +
        `${tok.specialTokens.size} special; longest token ${longest.length} bytes`,
    );
  }

  section("pre-tokenization");
  const pattern = new RegExp(g.pattern, "gu");
  console.log(`GPT-2 regex: ${g.pattern}`);
  const text = TEXTS[0];
  console.log(`${show(text)} -> ${[...text.matchAll(pattern)].map(([p]) => show(p)).join(" ")}`);

  section("merges, one at a time");
  const log: string[] = [];
  const piece = " tokenization";
  const ids = bpe(utf8.encode(piece), ranks.get("GPT-2")!, log);
  console.log(`GPT-2 on ${show(piece)} (${utf8.encode(piece).length} bytes):`);
  log.forEach((line, i) => console.log(`  merge ${i + 1}: ${line}`));
  console.log(`  ids ${JSON.stringify(ids)} = ${ids.map((id) => show(g.decode([id]))).join(" ")}`);

  section("whole texts");
  const rows: (string | number)[][] = [["text", ...vocabs.map(([n]) => `${n} tokens`)]];
  for (const t of TEXTS) {
    const row: (string | number)[] = [show(t).slice(0, 40)];
    for (const [name, tok] of vocabs) {
      const ours = encode(t, new RegExp(tok.pattern, "gu"), ranks.get(name)!);
      const theirs = tok.encode(t, { bos: false });
      check(
        `our BPE gives gollm's ${name} ids for ${show(t).slice(0, 24)}...`,
        JSON.stringify(ours) === JSON.stringify(theirs),
        `${ours.length} ids`,
      );
      row.push(ours.length);
    }
    rows.push(row);
  }
  table(rows);
  for (const [name, tok] of vocabs) {
    const ids = tok.encode(TEXTS[0], { bos: false });
    console.log(`${name}: ${JSON.stringify(ids)}`);
    console.log(`  pieces ${ids.map((id) => show(tok.decode([id]))).join(" ")}`);
  }

  section("negative control");
  const reversed = new Map([...ranks.get("GPT-2")!].map(([k, r]) => [k, -r]));
  const wrong = encode(TEXTS[1], pattern, reversed); // merges the LAST-learned pair first
  const right = g.encode(TEXTS[1], { bos: false });
  control(
    "merging the highest rank first",
    JSON.stringify(wrong) !== JSON.stringify(right),
    `${wrong.length} ids instead of ${right.length}`,
  );

  section("the model's own tokenizer");
  const model = await loadGuideModel();
  const tok: Tokenizer = model.tokenizer;
  const prompt = "Once upon a time";
  const theirs = tok.encode(prompt);
  console.log(`${model.name}: ${tok.vocabSize} ids, BOS ${tok.bosId}, EOS ${tok.eosIds}`);
  console.log(`${show(prompt)} -> ${JSON.stringify(theirs)}`);
  console.log(`  pieces ${theirs.map((id) => show(tok.tokenPiece(id))).join(" ")}`);
  let ours: number[];
  if (tok instanceof SentencePieceTokenizer) {
    ours = [tok.bosId!, ...spmEncode(prompt, tok.pieces, tok.scores)];
  } else {
    const t = tok as TiktokenTokenizer;
    ours = [t.bosId!, ...encode(prompt, new RegExp(t.pattern, "gu"), ranksOf(t))];
  }
  check(
    `our ${tok instanceof SentencePieceTokenizer ? "SentencePiece-style " : ""}BPE gives ` +
      `the ${model.name} tokenizer's ids`,
    JSON.stringify(ours) === JSON.stringify(theirs),
    `${ours.length} ids, BOS first`,
  );
}

if (import.meta.main) await main();
