/**
 * `deno task sft -- --config C --data chat.jsonl [--base DIR|CKPT] [--lora-rank R] [--max-steps N]`:
 * supervised finetuning of a model on chat conversations with python/sft.py (loss on the
 * assistant tokens only; LoRA optional, merged at export), exporting a gollm model directory
 * with `chat_template.jinja` that `gollm chat --model <dir>` runs.
 *
 * @module
 */
import { main, TRAIN_MODULES } from "./python.ts";

if (import.meta.main) await main("sft.py", [...TRAIN_MODULES, "jinja2"]);
