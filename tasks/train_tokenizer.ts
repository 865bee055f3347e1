/**
 * `deno task train:tokenizer -- --config configs/tiny.yaml`: trains the byte-level BPE named by
 * the config (vocab_size, train.corpus, train.special_tokens) into
 * `<train.out_dir>/tokenizer.tiktoken` with python/tokenizer.py.
 *
 * @module
 */
import { main } from "./python.ts";

if (import.meta.main) await main("tokenizer.py");
