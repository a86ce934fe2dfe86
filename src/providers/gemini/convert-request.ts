/**
 * IR chat request → Gemini `generateContent` body. Pure: the input is never mutated.
 * @see https://ai.google.dev/api/generate-content#method:-models.generatecontent
 */
import { emptyConversation, invalidRequest, unsupportedParameter } from '../../ir/errors.js';
import type { IREmbeddingsRequest } from '../../ir/embeddings.js';
import type {
  IRAssistantMessage,
  IRChatRequest,
  IRImagePart,
  IRMessage,
  IRReasoningEffort,
  IRResponseFormat,
  IRTool,
  IRToolChoice,
  IRUserMessage,
  IRWarning,
} from '../../ir/request.js';
import {
  geminiModelName,
  type GeminiBatchEmbedRequest,
  type GeminiContent,
  type GeminiFunctionDeclaration,
  type GeminiGenerateContentRequest,
  type GeminiGenerationConfig,
  type GeminiThinkingConfig,
  type GeminiPart,
  type GeminiToolConfig,
} from './gemini-api.js';

const PROVIDER = 'gemini';

/** Gemini accepts at most five stop sequences. @see https://ai.google.dev/api/generate-content#generationconfig */
export const GEMINI_MAX_STOP_SEQUENCES = 5;

/**
 * `reasoning_effort` → `thinkingConfig.thinkingBudget` (tokens).
 * @see https://ai.google.dev/gemini-api/docs/thinking#set-budget
 */
export const THINKING_BUDGETS: Readonly<Record<IRReasoningEffort, number>> = {
  none: 0,
  minimal: 512,
  low: 1024,
  medium: 8192,
  high: 24576,
  xhigh: 32768,
};

/** The smallest thinking budget of Gemini 2.5 Pro, which cannot turn thinking off. */
const MIN_PRO_THINKING_BUDGET = 128;

/**
 * Google's documented placeholder for a `thoughtSignature` the caller does not have. Gemini 3
 * models reject replayed `functionCall` parts without a signature; OpenAI-dialect clients never
 * see signatures, so they cannot send them back.
 * @see https://ai.google.dev/gemini-api/docs/thought-signatures
 */
export const SKIP_THOUGHT_SIGNATURE = 'skip_thought_signature_validator';

export interface GeminiRequestConversion {
  body: GeminiGenerateContentRequest;
  warnings: IRWarning[];
}

/**
 * Converts an IR chat request to a Gemini request body, with warnings for parameters that
 * have no equivalent but do not change meaning. Throws a `GatewayError` (400) for input Gemini
 * cannot honour.
 * @see https://ai.google.dev/api/generate-content#request-body
 */
export function convertRequest(req: IRChatRequest): GeminiRequestConversion {
  rejectUnsupported(req);
  const { systemInstruction, contents, warnings } = convertMessages(req.messages, req.model);
  const body: GeminiGenerateContentRequest = { contents };
  if (systemInstruction) body.systemInstruction = systemInstruction;
  const tools = req.tools ?? [];
  if (tools.length > 0) body.tools = [{ functionDeclarations: tools.map(convertTool) }];
  const toolConfig = convertToolChoice(req.toolChoice, tools);
  if (toolConfig) body.toolConfig = toolConfig;
  const generationConfig = convertGenerationConfig(req, warnings);
  if (Object.keys(generationConfig).length > 0) body.generationConfig = generationConfig;
  return { body, warnings: [...warnings, ...collectWarnings(req)] };
}

/** Throws for parameters whose loss would change the meaning of the request. */
function rejectUnsupported(req: IRChatRequest): void {
  if (req.n !== undefined && req.n > 1) {
    throw unsupportedParameter('n', PROVIDER, 'only one choice (n=1) is supported');
  }
  if (req.logprobs === true) throw unsupportedParameter('logprobs', PROVIDER);
  if (req.topLogprobs !== undefined && req.topLogprobs > 0) throw unsupportedParameter('top_logprobs', PROVIDER);
  if (req.logitBias && Object.keys(req.logitBias).length > 0) throw unsupportedParameter('logit_bias', PROVIDER);
  if (req.stop && req.stop.length > GEMINI_MAX_STOP_SEQUENCES) {
    throw unsupportedParameter('stop', PROVIDER, `at most ${GEMINI_MAX_STOP_SEQUENCES} stop sequences are accepted`);
  }
}

/** Parameters without a Gemini equivalent that do not change the answer. */
function collectWarnings(req: IRChatRequest): IRWarning[] {
  const warnings: IRWarning[] = [];
  if (req.user !== undefined) {
    warnings.push({ param: 'user', message: "'user' has no Gemini equivalent and was not forwarded." });
  }
  if (req.parallelToolCalls === false) {
    warnings.push({
      param: 'parallel_tool_calls',
      message: 'Gemini cannot disable parallel function calls; the model may call several tools at once.',
    });
  }
  if (req.metadata !== undefined) {
    warnings.push({ param: 'metadata', message: "'metadata' has no Gemini equivalent and was not forwarded." });
  }
  if (req.serviceTier !== undefined) {
    warnings.push({ param: 'service_tier', message: "'service_tier' has no Gemini equivalent and was not forwarded." });
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

interface ConvertedMessages {
  systemInstruction?: { parts: GeminiPart[] };
  contents: GeminiContent[];
  warnings: IRWarning[];
}

/**
 * System and developer messages → `systemInstruction` (in order); the rest → `contents`, with
 * user/tool turns as `user` and assistant turns as `model`, consecutive same-role turns merged.
 */
export function convertMessages(messages: readonly IRMessage[], model: string): ConvertedMessages {
  const system: GeminiPart[] = [];
  const contents: GeminiContent[] = [];
  const warnings: IRWarning[] = [];
  const toolNames = new Map<string, string>();
  const signFunctionCalls = needsThoughtSignature(model);

  messages.forEach((message, i) => {
    switch (message.role) {
      case 'system':
        if (message.text !== '') system.push({ text: message.text });
        return;
      case 'user':
        if (message.name !== undefined) {
          warnings.push({ param: `messages[${i}].name`, message: "Gemini has no participant names; 'name' was not forwarded." });
        }
        appendTurn(contents, 'user', convertUserContent(message));
        return;
      case 'assistant': {
        for (const call of message.toolCalls) toolNames.set(call.id, call.name);
        if (message.name !== undefined) {
          warnings.push({ param: `messages[${i}].name`, message: "Gemini has no participant names; 'name' was not forwarded." });
        }
        appendTurn(contents, 'model', convertAssistantContent(message, i, signFunctionCalls));
        return;
      }
      case 'tool': {
        const name = toolNames.get(message.toolCallId);
        if (name === undefined) {
          throw invalidRequest(
            `No earlier assistant tool call has the id given in 'tool_call_id'.`,
            `messages[${i}].tool_call_id`,
          );
        }
        appendTurn(contents, 'user', [{ functionResponse: { name, response: toolResponse(message.content) } }]);
        return;
      }
    }
  });

  if (contents.length === 0) {
    // Only system or developer messages (OpenAI answers those): Gemini needs contents, so the
    // system instruction becomes the user turn.
    if (system.length === 0) throw emptyConversation();
    warnings.push({ param: 'messages', message: 'Gemini needs a user or model turn; the system instruction was sent as the user turn.' });
    return { contents: [{ role: 'user', parts: system }], warnings };
  }
  const result: ConvertedMessages = { contents, warnings };
  if (system.length > 0) result.systemInstruction = { parts: system };
  return result;
}

/** Appends parts to the last turn when it has the same role, else starts a new turn. Empty → nothing. */
function appendTurn(contents: GeminiContent[], role: GeminiContent['role'], parts: GeminiPart[]): void {
  if (parts.length === 0) return;
  const last = contents[contents.length - 1];
  if (last && last.role === role) last.parts.push(...parts);
  else contents.push({ role, parts });
}

/** Gemini rejects empty text parts, so they are left out (they carry nothing). */
function convertUserContent(message: IRUserMessage): GeminiPart[] {
  const parts: GeminiPart[] = [];
  for (const part of message.content) {
    if (part.type === 'text') {
      if (part.text !== '') parts.push({ text: part.text });
    } else {
      parts.push(convertImage(part));
    }
  }
  return parts;
}

/**
 * Text parts, then the refusal (as text: it is what the model said), then one `functionCall`
 * part per tool call. The call ids are not sent: Gemini pairs calls and responses by name and
 * order, and some Gemini endpoints reject an `id` they did not issue.
 */
function convertAssistantContent(message: IRAssistantMessage, i: number, signFunctionCalls: boolean): GeminiPart[] {
  const parts: GeminiPart[] = [];
  for (const part of message.content) if (part.text !== '') parts.push({ text: part.text });
  if (message.refusal) parts.push({ text: message.refusal });
  message.toolCalls.forEach((call, j) => {
    const part: GeminiPart = {
      functionCall: { name: call.name, args: parseToolArguments(call.arguments, `messages[${i}].tool_calls[${j}].function.arguments`) },
    };
    // Only the first function call of a step carries the signature.
    if (signFunctionCalls && j === 0) part.thoughtSignature = SKIP_THOUGHT_SIGNATURE;
    parts.push(part);
  });
  return parts;
}

/** Tool call arguments must be a JSON object (Gemini's `args` is a Struct). Empty text → `{}`. */
export function parseToolArguments(text: string, param: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidRequest('Tool call arguments are not valid JSON.', param);
  }
  if (!isPlainObject(value)) throw invalidRequest('Tool call arguments must be a JSON object.', param);
  return value;
}

/**
 * A tool result as `functionResponse.response` (a Struct): the parsed JSON when the content is
 * a JSON object, else `{ content: text }`.
 * @see https://ai.google.dev/api/caching#FunctionResponse
 */
export function toolResponse(content: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(content);
    if (isPlainObject(value)) return value;
  } catch {
    /* not JSON: wrap the text */
  }
  return { content };
}

/**
 * Base64 images → `inlineData`. URL images → `fileData` with the URL as `fileUri` and a MIME
 * type guessed from the extension: the gateway does not fetch images itself (fetching https
 * images and inlining them is a later issue), so Gemini must be able to read the URL. A `data:`
 * URL is decoded to `inlineData`. OpenAI's `detail` has no equivalent and never changes meaning.
 * @see https://ai.google.dev/gemini-api/docs/image-understanding
 */
export function convertImage(part: IRImagePart): GeminiPart {
  const source = part.source;
  if (source.kind === 'base64') return { inlineData: { mimeType: source.mediaType, data: source.data } };
  const dataUrl = /^data:([^;,]+);base64,(.*)$/s.exec(source.url);
  if (dataUrl) return { inlineData: { mimeType: dataUrl[1]!, data: dataUrl[2]! } };
  return { fileData: { mimeType: guessImageMimeType(source.url), fileUri: source.url } };
}

const IMAGE_MIME_TYPES: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  heic: 'image/heic',
  heif: 'image/heif',
};

/** MIME type from the URL path's extension; `image/jpeg` when unknown. */
export function guessImageMimeType(url: string): string {
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    /* not a URL: use the text as it is */
  }
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  return (ext && IMAGE_MIME_TYPES[ext]) || 'image/jpeg';
}

/**
 * Whether replayed function calls need a `thoughtSignature`: Gemini 3 and later, and the
 * `-latest` aliases (which may point at such a model).
 * @see https://ai.google.dev/gemini-api/docs/thought-signatures
 */
export function needsThoughtSignature(model: string): boolean {
  const { id, major } = geminiVersion(model);
  if (major !== undefined) return major >= 3;
  return /^gemini-.*latest$/.test(id);
}

/** The model id without a `models/` prefix, and its major version (`gemini-3.1-pro` → 3) if it names one. */
function geminiVersion(model: string): { id: string; major?: number } {
  const id = model.replace(/^.*\//, '');
  const major = /^gemini-(\d+)/.exec(id)?.[1];
  return major === undefined ? { id } : { id, major: Number(major) };
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/**
 * A function tool → a function declaration. The JSON Schema goes in `parametersJsonSchema`,
 * passed as is (the older `parameters` field takes only an OpenAPI subset). A tool without
 * parameters sends none. `strict` has no equivalent (Gemini validates against the schema).
 * @see https://ai.google.dev/api/caching#FunctionDeclaration
 */
export function convertTool(tool: IRTool): GeminiFunctionDeclaration {
  const declaration: GeminiFunctionDeclaration = { name: tool.name };
  if (tool.description !== undefined) declaration.description = tool.description;
  if (Object.keys(tool.parameters).length > 0) declaration.parametersJsonSchema = tool.parameters;
  return declaration;
}

/**
 * `tool_choice` → `toolConfig.functionCallingConfig`: auto → AUTO, none → NONE, required → ANY,
 * a named tool → ANY restricted to that name.
 * @see https://ai.google.dev/gemini-api/docs/function-calling#function_calling_modes
 */
export function convertToolChoice(choice: IRToolChoice | undefined, tools: readonly IRTool[]): GeminiToolConfig | undefined {
  if (choice === undefined) return undefined;
  if (tools.length === 0) {
    if (choice.type === 'auto' || choice.type === 'none') return undefined;
    throw invalidRequest("'tool_choice' requires 'tools'.", 'tool_choice');
  }
  switch (choice.type) {
    case 'auto':
      return { functionCallingConfig: { mode: 'AUTO' } };
    case 'none':
      return { functionCallingConfig: { mode: 'NONE' } };
    case 'required':
      return { functionCallingConfig: { mode: 'ANY' } };
    case 'tool':
      if (!tools.some((t) => t.name === choice.name)) {
        throw invalidRequest(`'tool_choice' names a function that is not in 'tools'.`, 'tool_choice');
      }
      return { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.name] } };
  }
}

// ---------------------------------------------------------------------------------------------
// Generation config
// ---------------------------------------------------------------------------------------------

/** @see https://ai.google.dev/api/generate-content#generationconfig */
export function convertGenerationConfig(req: IRChatRequest, warnings: IRWarning[]): GeminiGenerationConfig {
  const config: GeminiGenerationConfig = {};
  if (req.temperature !== undefined) config.temperature = req.temperature;
  if (req.topP !== undefined) config.topP = req.topP;
  if (req.maxTokens !== undefined) config.maxOutputTokens = req.maxTokens;
  if (req.stop && req.stop.length > 0) config.stopSequences = [...req.stop];
  if (req.seed !== undefined) config.seed = req.seed;
  if (req.presencePenalty !== undefined) config.presencePenalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) config.frequencyPenalty = req.frequencyPenalty;
  Object.assign(config, convertResponseFormat(req.responseFormat));
  if (req.reasoningEffort !== undefined) config.thinkingConfig = convertThinking(req.reasoningEffort, req.model, warnings);
  return config;
}

/**
 * `reasoning_effort` → `thinkingConfig`. Gemini 3 and later take a `thinkingLevel` (Google's
 * recommendation; a budget is accepted there only for backwards compatibility, and thinking
 * cannot be turned off: `none` is the lowest level, with a warning). Gemini 2.5 and ids without
 * a version (e.g. `-latest` aliases) take a `thinkingBudget`, which both generations accept.
 * @see https://ai.google.dev/gemini-api/docs/thinking
 */
function convertThinking(effort: IRReasoningEffort, model: string, warnings: IRWarning[]): GeminiThinkingConfig {
  const { id, major = 0 } = geminiVersion(model);
  const pro = /-pro\b/.test(id);
  if (major < 3) {
    if (effort === 'none' && pro) {
      // Gemini 2.5 Pro thinks with at least 128 tokens.
      warnings.push({ param: 'reasoning_effort', message: 'Gemini Pro models cannot turn thinking off; the smallest budget (128) was used.' });
      return { thinkingBudget: MIN_PRO_THINKING_BUDGET, includeThoughts: false };
    }
    const thinkingBudget = THINKING_BUDGETS[effort];
    return { thinkingBudget, includeThoughts: thinkingBudget > 0 };
  }
  // Pro models have no 'minimal' level.
  const lowest = pro ? 'low' : 'minimal';
  if (effort === 'none') {
    warnings.push({ param: 'reasoning_effort', message: `Gemini ${major} models cannot turn thinking off; the lowest level (${lowest}) was used.` });
    return { thinkingLevel: lowest, includeThoughts: false };
  }
  if (effort === 'xhigh') {
    warnings.push({ param: 'reasoning_effort', message: 'Gemini has no xhigh thinking level; high was used.' });
    return { thinkingLevel: 'high', includeThoughts: true };
  }
  return { thinkingLevel: effort === 'minimal' ? lowest : effort, includeThoughts: true };
}

/**
 * `response_format` → JSON mode: `json_object` sets the JSON MIME type; `json_schema` also
 * passes the schema as is in `responseJsonSchema`.
 * @see https://ai.google.dev/gemini-api/docs/structured-output
 */
export function convertResponseFormat(format: IRResponseFormat | undefined): GeminiGenerationConfig {
  switch (format?.type) {
    case 'json_object':
      return { responseMimeType: 'application/json' };
    case 'json_schema':
      return { responseMimeType: 'application/json', responseJsonSchema: format.schema };
    default:
      return {};
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

export interface GeminiEmbeddingsConversion {
  body: GeminiBatchEmbedRequest;
  warnings: IRWarning[];
}

/**
 * IR embeddings request → `batchEmbedContents` body: one request per input, each naming the
 * model, with `dimensions` as `outputDimensionality`. `encoding_format: base64` is applied by
 * the gateway to the float vectors, so it is not sent.
 * @see https://ai.google.dev/api/embeddings#method:-models.batchembedcontents
 */
export function convertEmbeddingsRequest(req: IREmbeddingsRequest): GeminiEmbeddingsConversion {
  const model = geminiModelName(req.model);
  const requests = req.input.map((text) => {
    const request: GeminiBatchEmbedRequest['requests'][number] = { model, content: { parts: [{ text }] } };
    if (req.dimensions !== undefined) request.outputDimensionality = req.dimensions;
    return request;
  });
  const warnings: IRWarning[] = [];
  if (req.user !== undefined) {
    warnings.push({ param: 'user', message: "'user' has no Gemini equivalent and was not forwarded." });
  }
  return { body: { requests }, warnings };
}
