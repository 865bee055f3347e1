/**
 * `deno task train -- --config configs/tiny.yaml [--max-steps N] [--resume]`: trains a model
 * with python/train.py (tokenizer and shards are made first when missing), live progress.
 *
 * @module
 */
import { main } from "./python.ts";

if (import.meta.main) await main("train.py");
