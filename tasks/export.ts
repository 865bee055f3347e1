/**
 * `deno task export -- --config configs/tiny.yaml [--out DIR] [--dtype f32|f16|bf16] [--format gollm|hf]`:
 * turns a training checkpoint into a gollm (or Hugging Face) model directory with python/export.py.
 *
 * @module
 */
import { main } from "./python.ts";

if (import.meta.main) await main("export.py");
