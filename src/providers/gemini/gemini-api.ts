/**
 * Addressing the Gemini API (URLs and headers) and the subset of its wire format the adapter
 * speaks. Field names are the REST API's camelCase JSON names.
 * @see https://ai.google.dev/api
 */
import type { ProviderTarget } from '../provider.js';

/** The API version the official SDKs use by default. */
export const GEMINI_API_VERSION = 'v1beta';

/** The model methods the adapter calls. */
export type GeminiMethod = 'generateContent' | 'streamGenerateContent' | 'batchEmbedContents';

// ---------------------------------------------------------------------------------------------
// Request wire types
// ---------------------------------------------------------------------------------------------

/** @see https://ai.google.dev/api/caching#FunctionCall */
export interface GeminiFunctionCall {
  name: string;
  args?: Record<string, unknown>;
  id?: string;
}

/** @see https://ai.google.dev/api/caching#FunctionResponse */
export interface GeminiFunctionResponse {
  name: string;
  response: Record<string, unknown>;
  id?: string;
}

/**
 * One part of a turn. Exactly one data field is set; `thought` marks a thinking summary and
 * `thoughtSignature` carries the model's opaque reasoning state.
 * @see https://ai.google.dev/api/caching#Part
 */
export interface GeminiPart {
  text?: string;
  thought?: boolean;
  thoughtSignature?: string;
  inlineData?: { mimeType: string; data: string };
  fileData?: { mimeType?: string; fileUri: string };
  functionCall?: GeminiFunctionCall;
  functionResponse?: GeminiFunctionResponse;
}

/** @see https://ai.google.dev/api/caching#Content */
export interface GeminiContent {
  role: 'user' | 'model';
  parts: GeminiPart[];
}

/** @see https://ai.google.dev/api/caching#FunctionDeclaration */
export interface GeminiFunctionDeclaration {
  name: string;
  description?: string;
  /** JSON Schema, passed as is (mutually exclusive with the OpenAPI-subset `parameters`). */
  parametersJsonSchema?: Record<string, unknown>;
}

/** @see https://ai.google.dev/api/caching#ToolConfig */
export interface GeminiToolConfig {
  functionCallingConfig: {
    mode: 'AUTO' | 'ANY' | 'NONE';
    allowedFunctionNames?: string[];
  };
}

/** @see https://ai.google.dev/api/generate-content#generationconfig */
export interface GeminiGenerationConfig {
  temperature?: number;
  topP?: number;
  maxOutputTokens?: number;
  stopSequences?: string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  responseMimeType?: string;
  /** JSON Schema for structured output (mutually exclusive with the OpenAPI-subset `responseSchema`). */
  responseJsonSchema?: Record<string, unknown>;
  thinkingConfig?: GeminiThinkingConfig;
}

/** A budget (Gemini 2.5) or a level (Gemini 3 and later), never both. @see https://ai.google.dev/gemini-api/docs/thinking */
export interface GeminiThinkingConfig {
  thinkingBudget?: number;
  thinkingLevel?: 'minimal' | 'low' | 'medium' | 'high';
  includeThoughts?: boolean;
}

/** @see https://ai.google.dev/api/generate-content#request-body */
export interface GeminiGenerateContentRequest {
  contents: GeminiContent[];
  systemInstruction?: { parts: GeminiPart[] };
  tools?: Array<{ functionDeclarations: GeminiFunctionDeclaration[] }>;
  toolConfig?: GeminiToolConfig;
  generationConfig?: GeminiGenerationConfig;
}

/** @see https://ai.google.dev/api/embeddings#method:-models.batchembedcontents */
export interface GeminiBatchEmbedRequest {
  requests: Array<{
    model: string;
    content: { parts: Array<{ text: string }> };
    outputDimensionality?: number;
  }>;
}

// ---------------------------------------------------------------------------------------------
// Addressing
// ---------------------------------------------------------------------------------------------

/**
 * The resource name of a model: `models/{id}` for a bare id; names that already carry a
 * collection (`models/…`, `tunedModels/…`) are kept as they are.
 * @see https://ai.google.dev/api/models
 */
export function geminiModelName(model: string): string {
  return /^(models|tunedModels)\//.test(model) ? model : `models/${model}`;
}

/**
 * Absolute URL of a model method, following the official SDK convention: the configured base
 * URL (`https://generativelanguage.googleapis.com`, trailing slashes stripped) + `/v1beta/` +
 * the model resource name + `:method`. Streams ask for SSE with `alt=sse`.
 * @see https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
 */
export function geminiUrl(baseUrl: string, model: string, method: GeminiMethod): string {
  const base = baseUrl.replace(/\/+$/, '');
  const name = geminiModelName(model).split('/').map(encodeURIComponent).join('/');
  const query = method === 'streamGenerateContent' ? '?alt=sse' : '';
  return `${base}/${GEMINI_API_VERSION}/${name}:${method}${query}`;
}

/**
 * Request headers: configured static headers (names lower-cased), JSON content type, and the
 * API key in `x-goog-api-key` — never in the URL, where it would end up in access logs.
 * @see https://ai.google.dev/gemini-api/docs/api-key
 */
export function geminiHeaders(target: ProviderTarget): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(target.headers ?? {})) headers[name.toLowerCase()] = value;
  headers['content-type'] = 'application/json';
  if (target.apiKey) headers['x-goog-api-key'] = target.apiKey;
  return headers;
}
