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
export { createModel, loadModel, MAX_THREADS, resolveThreads } from "./runtime/model.ts";
export type {
  Backend,
  CheckpointInfo,
  GenerateOptions,
  GenerateStats,
  LoadModelOptions,
  Model,
  ModelOptions,
  StopReason,
} from "./runtime/model.ts";
export type { ProgressCallback, ProgressEvent } from "./core/progress.ts";
export { ByteReader, localPath, openModelBytes } from "./core/model_bytes.ts";
export type { ModelBytes } from "./core/model_bytes.ts";

// Checkpoints
export {
  detectFormat,
  inspectCheckpoint,
  loadCheckpoint,
  loadCheckpointTokenizer,
} from "./formats/load.ts";
export type { LoadCheckpointOptions } from "./formats/load.ts";
export type {
  Checkpoint,
  CheckpointFormat,
  CheckpointSummary,
  CheckpointTensorInfo,
  GenerationDefaults,
} from "./formats/checkpoint.ts";
export {
  GOLLM_FORMAT_VERSION,
  inspectGollmDir,
  loadGollmDir,
  loadGollmTokenizer,
  writeGollmDir,
} from "./formats/gollm_dir.ts";
export type { LoadGollmDirOptions, WriteGollmDirOptions } from "./formats/gollm_dir.ts";
export { inspectHf, loadHf, type LoadHfOptions } from "./formats/hf.ts";
export { loadGguf } from "./formats/gguf/checkpoint.ts";
export type { GgufLoadOptions, GgufModelInfo } from "./formats/gguf/checkpoint.ts";
export { readGguf, readGgufStream } from "./formats/gguf/parse.ts";
export type { GgufFile, GgufTensorInfo, GgufValue } from "./formats/gguf/parse.ts";
export type { GgmlType } from "./formats/quant.ts";
export {
  dequantize,
  GGML_TYPES,
  ggmlType,
  ggmlTypeByName,
  quantize,
  rowBytes,
} from "./formats/quant.ts";
export {
  bitsPerWeight,
  checkQuantTensor,
  dequantizeRows,
  dequantizeTensor,
  dequantizeWeights,
  quantizeTensor,
} from "./formats/quant/tensor.ts";
export type { QuantTensor } from "./formats/quant/tensor.ts";
export { gguf, writeGguf } from "./formats/gguf/write.ts";
export type {
  GgufScalarType,
  GgufTypedValue,
  GgufWriteInput,
  GgufWriteTensor,
  WriteGgufOptions,
} from "./formats/gguf/write.ts";
export { FILE_TYPES, fileType, tensorType } from "./formats/quant/mix.ts";
export type { FileType, MixModel } from "./formats/quant/mix.ts";
export { quantizeModel } from "./formats/quantize.ts";
export type {
  QuantizedTensorInfo,
  QuantizeModelOptions,
  QuantizeModelResult,
} from "./formats/quantize.ts";
export { loadLlama2c } from "./formats/llama2c.ts";
export { readLlama2cTokenizer } from "./tokenizers/sentencepiece.ts";
export type { LoadLlama2cOptions } from "./formats/llama2c.ts";
export {
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from "./formats/safetensors.ts";
export type {
  ReadSafetensorsOptions,
  SafetensorsDtype,
  SafetensorsEntry,
  SafetensorsFile,
  SafetensorsWriteDtype,
  WriteSafetensorsOptions,
} from "./formats/safetensors.ts";

// Config, weights, errors
export {
  CONFIG_FIELDS,
  CONFIG_LIMITS,
  configToYaml,
  layerRopeIsLocal,
  layerWindow,
  loadConfig,
  parameterCount,
  parseConfig,
  parseConfigYaml,
} from "./core/config.ts";
export type { Arch, LayerType, ModelConfig, RopeScaling } from "./core/config.ts";
export { longropeFactors, ropeAttnFactor, ropeInvFreq } from "./core/rope.ts";
export {
  allF32,
  checkTensorShapes,
  checkWeights,
  expectedShapes,
  randomWeights,
  requireF32,
  storedBytes,
} from "./core/weights.ts";
export { expectedTensorCount, TENSOR_NAMES, tensorName } from "./core/tensor_names.ts";
export type { HfFamily, TensorKind, TensorNameRow, TensorSource } from "./core/tensor_names.ts";
export type {
  F32Tensor,
  F32Weights,
  StorageType,
  StoredTensor,
  Tensor,
  Weights,
} from "./core/weights.ts";
export { ConfigError, FormatError, GollmError, ResourceError } from "./core/errors.ts";

// Tokenizers, sampling, chat
export { StreamDecoder } from "./tokenizers/tokenizer.ts";
export type { EncodeOptions, Tokenizer } from "./tokenizers/tokenizer.ts";
export { loadTokenizer } from "./tokenizers/tokenizer_file.ts";
export {
  BUILTIN_ENCODINGS,
  PRETOKENIZE_PATTERNS,
  TiktokenTokenizer,
} from "./tokenizers/tiktoken.ts";
export type { TiktokenOptions } from "./tokenizers/tiktoken.ts";
export { SentencePieceTokenizer } from "./tokenizers/sentencepiece.ts";
export type { SentencePieceVocab } from "./tokenizers/sentencepiece.ts";
export { loadHfTokenizer } from "./tokenizers/hf_tokenizer.ts";
export { checkTokenizerFits } from "./tokenizers/fit.ts";
export type {
  NormalizationForm,
  PreTokenizerSpec,
  PreTokenizerStep,
  SplitBehavior,
} from "./tokenizers/pretokenizer.ts";
export { resolveSamplerOptions, Sampler } from "./runtime/sampler.ts";
export type { ResolvedSamplerOptions, SamplerOptions } from "./runtime/sampler.ts";
export { JSON_MAX_DEPTH, JsonConstraint, JsonRecognizer } from "./runtime/json_constraint.ts";
export type { ByteRecognizer, TokenConstraint } from "./runtime/json_constraint.ts";
export { compileJsonSchema, JsonSchemaError } from "./runtime/json_schema.ts";
export type { CompiledJsonSchema, SchemaNode, SchemaProperty } from "./runtime/json_schema.ts";
export { JsonSchemaRecognizer } from "./runtime/json_schema_recognizer.ts";
export { renderChat } from "./tokenizers/chat_template.ts";
export type { ChatMessage, RenderChatOptions } from "./tokenizers/chat_template.ts";

// Speculative decoding (Leviathan et al. 2023): proposers and verification
export { checkDraftVocabulary, speculativeStats, verifyDraft } from "./runtime/speculative.ts";
export type {
  Draft,
  SpeculativeProposer,
  SpeculativeStats,
  TokenDistribution,
  VerifyResult,
  VerifySampler,
  VocabularyOwner,
} from "./runtime/speculative.ts";
export {
  checkSpeculativeOptions,
  DEFAULT_DRAFT_MAX,
  SpeculativeDecoder,
  speculativeDecoder,
} from "./runtime/speculative_decode.ts";
export type {
  SpeculativeGenerateOptions,
  SpeculativeLoopOptions,
  VerifyTarget,
} from "./runtime/speculative_decode.ts";

// Forward passes and the JIT
export type {
  BatchForward,
  BatchLayout,
  ForwardOptions,
  ForwardPass,
  KvCacheType,
  KvCacheTypes,
  StepInput,
} from "./core/forward.ts";
export {
  checkSequence,
  checkStepInput,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MAX_ROWS,
  KV_CACHE_TYPES,
  kvBlockBytes,
  kvCacheTypes,
  kvTypeBytes,
  resolveBatchLayout,
} from "./core/forward.ts";
export { singleSequence, singleSequenceBlocks } from "./core/single_sequence.ts";
export { createReference } from "./runtime/reference.ts";
export type { ReferenceOptions, TraceName } from "./runtime/reference.ts";
export { compileBatch, compileModel, compilePlan } from "./codegen/compile.ts";
export type {
  BatchCompileOptions,
  CompiledBatch,
  CompiledModel,
  CompiledParts,
  CompileOptions,
  ThreadOptions,
} from "./codegen/compile.ts";
export { instantiateWasm } from "./codegen/compile_wasm.ts";
export type {
  StartPool,
  StepRunner,
  WasmBatch,
  WasmCompileOptions,
} from "./codegen/compile_wasm.ts";
export {
  createThreadPool,
  startStepPool,
  startThreadPool,
  ThreadError,
  threadsUnavailable,
} from "./runtime/threads.ts";
export type { PoolWorker, ThreadPool, ThreadPoolOptions } from "./runtime/threads.ts";
export { emitKernels } from "./codegen/emit_js.ts";
export {
  emitWasmListing,
  emitWasmStep,
  layoutWasm,
  WasmUnsupportedError,
} from "./codegen/emit_wasm.ts";
export type {
  LinearShape,
  PlacedWeights,
  WasmKernels,
  WasmLayout,
  WasmStepModule,
  WasmStepOptions,
} from "./codegen/emit_wasm.ts";
export type { WasmWeight } from "./codegen/wasm/renderers.ts";
export type { WeightTypeName } from "./codegen/wasm/blocks.ts";
export { planArena, planBatch, singleSequenceLayout } from "./codegen/plan.ts";
export type { Plan, PlannedBuffer, PlanOptions } from "./codegen/plan.ts";
export type {
  BufferKind,
  Graph,
  GraphBuffer,
  GraphNode,
  GraphNodeOf,
  NodeOp,
  OpAttrs,
} from "./codegen/graph.ts";
export { extendedFeatures } from "./codegen/graph_features.ts";
export { benchPrompt, formatBench, runBench, runModelBench } from "./runtime/bench.ts";
export type {
  BackendBench,
  BenchBackend,
  BenchOptions,
  BenchProgress,
  BenchResult,
  ModelBenchInfo,
  ModelBenchOptions,
} from "./runtime/bench.ts";

// Serving: continuous batching, the KV block pool, the OpenAI-compatible HTTP handler
export { createBatchModel, loadBatchModel } from "./runtime/batch_model.ts";
export type { BatchModel, BatchModelOptions } from "./runtime/batch_model.ts";
export { createServer } from "./server/http.ts";
export type { GollmServer, ServerOptions, ServerStats } from "./server/http.ts";
export { QueueFullError, Scheduler } from "./server/scheduler.ts";
export type { SchedulerOptions, SchedulerStats, SpeculativeOptions } from "./server/scheduler.ts";
export { DraftModelProposer, draftModelProposers, NgramProposer } from "./server/speculative.ts";
export type { Proposer } from "./server/speculative.ts";
export { BlockManager, NULL_BLOCK } from "./server/block_manager.ts";
export { choiceSeed, interleaveChoices } from "./server/choices.ts";
export type { ChoiceEvent } from "./server/choices.ts";
export type {
  BlockManagerOptions,
  PrefixCacheStats,
  PromptAllocation,
} from "./server/block_manager.ts";
export type {
  FinishReason,
  GeneratedToken,
  GenerationChunk,
  GenerationHandle,
  GenerationRequest,
  GenerationResult,
  TokenLogprob,
} from "./server/sequence.ts";
export { ApiError, parseChatRequest, parseCompletionRequest } from "./server/openai.ts";
export type {
  ApiChatMessage,
  ChatRequest,
  CommonParams,
  CompletionRequest,
} from "./server/openai.ts";
// Model quality
export {
  defaultPerplexityCtx,
  perplexity,
  PERPLEXITY_DEFAULT_CTX,
  PERPLEXITY_MIN_CTX,
  perplexityTokens,
} from "./runtime/perplexity.ts";
export type {
  PerplexityModel,
  PerplexityOptions,
  PerplexityProgress,
  PerplexityResult,
} from "./runtime/perplexity.ts";
