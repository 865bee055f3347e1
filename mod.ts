/**
 * gollm: run decoder-only transformer language models (LLaMA-3 and GPT-2 style) in Deno,
 * with a tensor JIT that emits kernels specialised for each model config.
 *
 * The usual entry point is {@linkcode loadModel}: it reads a gollm model directory, a
 * Hugging Face directory, a GGUF file or a llama2.c checkpoint, compiles the forward pass,
 * and returns a {@linkcode Model} whose `generate()` streams text.
 *
 * @example
 * ```ts ignore
 * import { loadModel } from "@gollm/cli";
 * const model = await loadModel("models/default");
 * for await (const piece of model.generate("Once upon a time", { maxTokens: 64, seed: 1 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * ```
 *
 * @module
 */

// Model API
export { createModel, loadModel } from "./engine/model.ts";
export type {
  Backend,
  CheckpointInfo,
  GenerateOptions,
  GenerateStats,
  LoadModelOptions,
  Model,
  ModelOptions,
  StopReason,
} from "./engine/model.ts";
export type { ProgressCallback, ProgressEvent } from "./engine/progress.ts";

// Checkpoints
export { detectFormat, loadCheckpoint, loadCheckpointTokenizer } from "./engine/load.ts";
export type { LoadCheckpointOptions } from "./engine/load.ts";
export type { Checkpoint, CheckpointFormat, GenerationDefaults } from "./engine/checkpoint.ts";
export {
  GOLLM_FORMAT_VERSION,
  loadGollmDir,
  loadGollmTokenizer,
  writeGollmDir,
} from "./engine/gollm_dir.ts";
export type { LoadGollmDirOptions, WriteGollmDirOptions } from "./engine/gollm_dir.ts";
export { loadHf } from "./engine/hf.ts";
export { loadGguf, readGguf } from "./engine/gguf.ts";
export type { GgufFile, GgufTensorInfo, GgufValue } from "./engine/gguf.ts";
export type { GgmlType } from "./engine/quant.ts";
export { loadLlama2c, readLlama2cTokenizer } from "./engine/llama2c.ts";
export type { LoadLlama2cOptions } from "./engine/llama2c.ts";
export { parseSafetensors, readSafetensors, writeSafetensors } from "./engine/safetensors.ts";
export type {
  SafetensorsDtype,
  SafetensorsFile,
  SafetensorsWriteDtype,
  WriteSafetensorsOptions,
} from "./engine/safetensors.ts";

// Config, weights, errors
export {
  CONFIG_FIELDS,
  configToYaml,
  loadConfig,
  parameterCount,
  parseConfig,
  parseConfigYaml,
} from "./engine/config.ts";
export type { Arch, ModelConfig } from "./engine/config.ts";
export { checkWeights, expectedShapes, randomWeights } from "./engine/weights.ts";
export type { Tensor, Weights } from "./engine/weights.ts";
export { ConfigError, FormatError, GollmError } from "./engine/errors.ts";

// Tokenizers, sampling, chat
export { StreamDecoder } from "./engine/tokenizer.ts";
export type { EncodeOptions, Tokenizer } from "./engine/tokenizer.ts";
export { loadTokenizer } from "./engine/tokenizer_file.ts";
export { BUILTIN_ENCODINGS, PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "./engine/tiktoken.ts";
export type { TiktokenOptions } from "./engine/tiktoken.ts";
export { SentencePieceTokenizer } from "./engine/sentencepiece.ts";
export type { SentencePieceVocab } from "./engine/sentencepiece.ts";
export { loadHfTokenizer } from "./engine/hf_tokenizer.ts";
export { resolveSamplerOptions, Sampler } from "./engine/sampler.ts";
export type { ResolvedSamplerOptions, SamplerOptions } from "./engine/sampler.ts";
export { renderChat } from "./engine/chat.ts";
export type { ChatMessage, RenderChatOptions } from "./engine/chat.ts";

// Forward passes and the JIT
export type { ForwardOptions, ForwardPass } from "./engine/forward.ts";
export { createReference } from "./engine/reference.ts";
export { compileModel } from "./codegen/compile.ts";
export type { CompiledModel, CompileOptions } from "./codegen/compile.ts";
export { emitKernels } from "./codegen/emit_js.ts";
export { emitWasmListing } from "./codegen/emit_wasm.ts";
export type { LinearShape, WasmKernels } from "./codegen/emit_wasm.ts";
export { planArena } from "./codegen/plan.ts";
export type { Plan, PlannedBuffer, PlanOptions } from "./codegen/plan.ts";
export type { BufferKind, Graph, GraphBuffer, GraphNode, NodeOp } from "./codegen/graph.ts";
export { formatBench, runBench } from "./codegen/bench.ts";
export type {
  BackendBench,
  BenchBackend,
  BenchOptions,
  BenchProgress,
  BenchResult,
} from "./codegen/bench.ts";
