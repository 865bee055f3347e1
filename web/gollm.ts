/**
 * gollm in the browser: the page's module, `web/dist/gollm.js` (`deno task build:web`
 * bundles it and the model worker, web/worker.ts, into `web/dist/`, one ES module each plus
 * the chunks they share; no network access of their own). A page loads a GGUF from a URL, a
 * fetched `Response`, a `File` from an `<input type="file">` or bytes into a dedicated
 * worker, which runs it on the WASM backend on one or more threads and streams the text
 * back, so the page stays responsive:
 *
 * ```html
 * <script type="module">
 *   import { loadModelInWorker } from "./dist/gollm.js";
 *   const threads = crossOriginIsolated ? navigator.hardwareConcurrency : 1;
 *   const model = await loadModelInWorker("model.gguf", { threads });
 *   for await (const piece of model.generate("Once upon a time", { maxTokens: 40 })) ...
 * </script>
 * ```
 *
 * More than one thread needs the page to be cross-origin isolated (served with
 * `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy:
 * require-corp`): the model worker and its pool's workers share one `WebAssembly.Memory`.
 * Without isolation, asking for more than one thread fails with one line saying so; one
 * thread works anywhere. `loadModel` runs a model in the calling context instead: in a
 * worker of your own with any thread count, or on a page's main thread with one (which
 * may not block in `Atomics.wait`, so it cannot wait for a pool).
 *
 * The bundle maps the two Node modules the engine names (`node:path`,
 * `node:worker_threads`) to `web/shims/` (web/bundle_imports.json); a page never reaches
 * them. `web/index.html` is a page that does all this; `deno task web --model FILE.gguf`
 * serves it, isolated. Source: the same runtime as the CLI.
 *
 * @module
 */
export { loadModel } from "../runtime/model.ts";
export type {
  Backend,
  CheckpointInfo,
  GenerateOptions,
  GenerateStats,
  LoadModelOptions,
  Model,
  ModelOptions,
  StopReason,
} from "../runtime/model.ts";
export type { Arch, LayerType, ModelConfig, RopeScaling } from "../core/config.ts";
export type { KvCacheType } from "../core/forward.ts";
export type { CheckpointFormat, GenerationDefaults } from "../formats/checkpoint.ts";
export type { ProgressCallback, ProgressEvent } from "../core/progress.ts";
export type {
  Draft,
  SpeculativeProposer,
  SpeculativeStats,
  TokenDistribution,
} from "../runtime/speculative.ts";
export type { ResolvedSamplerOptions, SamplerOptions } from "../runtime/sampler.ts";
export type { SpeculativeGenerateOptions } from "../runtime/speculative_decode.ts";
export type { EncodeOptions, Tokenizer } from "../tokenizers/tokenizer.ts";
export type { ModelBytes } from "../core/model_bytes.ts";
export { StreamDecoder } from "../tokenizers/tokenizer.ts";
export { loadModelInWorker } from "./worker_model.ts";
export type {
  FromWorker,
  ToWorker,
  WorkerGenerateOptions,
  WorkerLoadOptions,
  WorkerModel,
  WorkerModelSource,
} from "./worker_model.ts";
