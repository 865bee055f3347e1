/**
 * gollm in the browser: the entry `deno task build:web` bundles into `web/dist/gollm.js`
 * (one ES module, no network access of its own). A page loads a GGUF from a URL, a fetched
 * `Response`, a `File` from an `<input type="file">` or bytes, and runs it on the WASM
 * backend on one thread:
 *
 * ```html
 * <script type="importmap">
 *   {"imports": {"node:path": "./shims/node_path.js",
 *                "node:worker_threads": "./shims/node_worker_threads.js"}}
 * </script>
 * <script type="module">
 *   import { loadModel } from "./dist/gollm.js";
 *   const model = await loadModel(new URL("model.gguf", location.href), { threads: 1 });
 *   for await (const piece of model.generate("Once upon a time", { maxTokens: 40 })) ...
 * </script>
 * ```
 *
 * The import map stands in for the two Node modules the bundle still names (file paths and
 * the thread pool, which a page never reaches: it passes bytes or a URL, and one thread).
 * The page needs no cross-origin isolation. `web/index.html` is a page that does this;
 * `deno task web --model FILE.gguf` serves it. Source: the same runtime as the CLI.
 *
 * @module
 */
export { loadModel } from "../runtime/model.ts";
export type { GenerateOptions, GenerateStats, LoadModelOptions, Model } from "../runtime/model.ts";
export type { ModelBytes } from "../core/model_bytes.ts";
export { StreamDecoder } from "../tokenizers/tokenizer.ts";
