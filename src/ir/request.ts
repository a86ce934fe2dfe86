/**
 * The internal representation (IR) of a chat request. Every inbound dialect decodes into this
 * shape and every provider adapter converts it to its own wire format. Pure types, no I/O.
 *
 * Semantics follow OpenAI's Chat Completions API where a choice had to be made.
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */

/** A plain text part of a message. */
export interface IRTextPart {
  type: 'text';
  text: string;
}

/** An image given inline (base64) or by an https URL. */
export interface IRImagePart {
  type: 'image';
  source: { kind: 'base64'; mediaType: string; data: string } | { kind: 'url'; url: string };
  /** OpenAI's `detail`; providers without an equivalent ignore it (it never changes meaning). */
  detail?: 'auto' | 'low' | 'high';
}

export type IRUserContentPart = IRTextPart | IRImagePart;

/** A tool call made by the assistant. `arguments` is the JSON text exactly as generated. */
export interface IRToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** System and developer messages. `origin` keeps which role the client used. */
export interface IRSystemMessage {
  role: 'system';
  origin: 'system' | 'developer';
  text: string;
}

export interface IRUserMessage {
  role: 'user';
  content: IRUserContentPart[];
  name?: string;
}

export interface IRAssistantMessage {
  role: 'assistant';
  /** Text parts in order; may be empty when the turn only called tools. */
  content: IRTextPart[];
  toolCalls: IRToolCall[];
  refusal?: string;
  name?: string;
}

/** The result of a tool call, answered by the client. */
export interface IRToolMessage {
  role: 'tool';
  toolCallId: string;
  /** Text of the result. (OpenAI allows only text parts in tool messages.) */
  content: string;
}

export type IRMessage = IRSystemMessage | IRUserMessage | IRAssistantMessage | IRToolMessage;

/** A function tool. `parameters` is a JSON Schema object. */
export interface IRTool {
  name: string;
  description?: string;
  parameters: Record<string, unknown>;
  strict?: boolean;
}

export type IRToolChoice =
  | { type: 'auto' }
  | { type: 'none' }
  | { type: 'required' }
  | { type: 'tool'; name: string };

export type IRResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      name: string;
      schema: Record<string, unknown>;
      description?: string;
      strict?: boolean;
    };

/** OpenAI's `reasoning_effort` values. Each provider maps them to its thinking setting. */
export type IRReasoningEffort = 'none' | 'minimal' | 'low' | 'medium' | 'high' | 'xhigh';

export interface IRChatRequest {
  /** The model id at the upstream (already resolved by routing). */
  model: string;
  messages: IRMessage[];
  stream: boolean;
  /** `max_completion_tokens` or `max_tokens`. Undefined when the client sent none. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  /** Normalised to an array. */
  stop?: string[];
  seed?: number;
  user?: string;
  tools?: IRTool[];
  toolChoice?: IRToolChoice;
  parallelToolCalls?: boolean;
  responseFormat?: IRResponseFormat;
  reasoningEffort?: IRReasoningEffort;
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** Number of choices; only 1 is translated to non-OpenAI providers. */
  n?: number;
  logprobs?: boolean;
  topLogprobs?: number;
  logitBias?: Record<string, number>;
  metadata?: Record<string, string>;
  serviceTier?: string;
}

/** Context a provider adapter gets from the catalog when converting a request. */
export interface IRRequestContext {
  /** Maximum output tokens of the model from the catalog (used where a provider requires one). */
  maxOutputTokens?: number;
}

/**
 * A parameter the upstream cannot honour exactly. Adapters return these instead of dropping
 * parameters silently; the gateway surfaces them to the client (`x-maxrouter-warnings`).
 * Where dropping would change meaning, adapters throw an `invalidRequest` error instead.
 */
export interface IRWarning {
  param: string;
  message: string;
}
