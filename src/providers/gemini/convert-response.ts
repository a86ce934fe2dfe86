/**
 * Gemini `GenerateContentResponse` → IR. Shared by the non-stream parser and the stream decoder
 * (each SSE chunk of `alt=sse` is a whole `GenerateContentResponse`).
 * @see https://ai.google.dev/api/generate-content#generatecontentresponse
 */
import { randomBytes } from 'node:crypto';
import type { IREmbeddingsResult } from '../../ir/embeddings.js';
import { GatewayError } from '../../ir/errors.js';
import type { IRFinishReason } from '../../ir/finish-reason.js';
import type { IRToolCall } from '../../ir/request.js';
import type { IRChatResult } from '../../ir/response.js';
import { emptyUsage, tokenCount, type IRUsage } from '../../ir/usage.js';
import { mapGeminiFinishReason } from './map-finish-reason.js';

/** A 502 for an answer that is not a Gemini response. */
export function badResponse(what: string): GatewayError {
  return new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Gemini returned a malformed response: ${what}.`);
}

/** A tool call id for a function call that came without one. */
export function generateToolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}

/**
 * Gemini usage → IR usage (OpenAI semantics).
 * - `promptTokenCount` already includes `cachedContentTokenCount`; tokens of built-in tool
 *   results (`toolUsePromptTokenCount`) are prompt tokens too.
 * - `candidatesTokenCount` excludes thinking, so `thoughtsTokenCount` is added to completion.
 * @see https://ai.google.dev/api/generate-content#UsageMetadata
 */
export function normalizeUsage(meta: unknown): IRUsage {
  if (typeof meta !== 'object' || meta === null) return emptyUsage();
  const m = meta as Record<string, unknown>;
  const thoughts = tokenCount(m.thoughtsTokenCount);
  return {
    promptTokens: tokenCount(m.promptTokenCount) + tokenCount(m.toolUsePromptTokenCount),
    completionTokens: tokenCount(m.candidatesTokenCount) + thoughts,
    cachedTokens: tokenCount(m.cachedContentTokenCount),
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    reasoningTokens: thoughts,
  };
}

/** One meaningful piece of a candidate's content, in order. */
export type CandidatePiece =
  | { kind: 'text'; text: string }
  | { kind: 'reasoning'; text: string }
  | { kind: 'function-call'; id: string; name: string; arguments: string };

/**
 * The pieces of a candidate's `content.parts`: thought parts → reasoning, other text → text,
 * function calls → calls (id from the part when Gemini gave one). Parts carrying only a
 * `thoughtSignature` or data the IR cannot carry are skipped. Throws on a malformed shape.
 * @see https://ai.google.dev/api/caching#Part
 */
export function candidatePieces(candidate: Record<string, unknown>): CandidatePiece[] {
  const content = candidate.content;
  if (content === undefined) return [];
  if (!isObject(content)) throw badResponse('candidate content is not an object');
  const parts = content.parts;
  if (parts === undefined) return [];
  if (!Array.isArray(parts)) throw badResponse('content parts is not an array');
  const pieces: CandidatePiece[] = [];
  for (const part of parts) {
    if (!isObject(part)) throw badResponse('a content part is not an object');
    if (part.functionCall !== undefined) pieces.push(functionCallPiece(part.functionCall));
    else if (typeof part.text === 'string' && part.text !== '') {
      pieces.push({ kind: part.thought === true ? 'reasoning' : 'text', text: part.text });
    }
  }
  return pieces;
}

function functionCallPiece(call: unknown): CandidatePiece {
  if (!isObject(call) || typeof call.name !== 'string') throw badResponse('a function call has no name');
  const args = call.args === undefined ? {} : call.args;
  const id = typeof call.id === 'string' && call.id !== '' ? call.id : generateToolCallId();
  return { kind: 'function-call', id, name: call.name, arguments: JSON.stringify(args) };
}

/** Finish reason of a candidate; `STOP` with function calls is `tool_calls`. */
export function candidateFinishReason(reason: unknown, hasFunctionCalls: boolean): IRFinishReason {
  const mapped = mapGeminiFinishReason(reason);
  return mapped === 'stop' && hasFunctionCalls ? 'tool_calls' : mapped;
}

/**
 * The first candidate of a response (the adapter asks for one), undefined when there is none.
 * Throws when `candidates` is not an array of objects.
 */
export function firstCandidate(response: Record<string, unknown>): Record<string, unknown> | undefined {
  const candidates = response.candidates;
  if (candidates === undefined) return undefined;
  if (!Array.isArray(candidates)) throw badResponse('candidates is not an array');
  if (candidates.length === 0) return undefined;
  const first = candidates.find((c) => isObject(c) && (c.index === undefined || c.index === 0)) ?? candidates[0];
  if (!isObject(first)) throw badResponse('a candidate is not an object');
  return first;
}

/** `promptFeedback.blockReason` when the prompt was blocked. */
export function promptBlockReason(response: Record<string, unknown>): string | undefined {
  const feedback = response.promptFeedback;
  if (!isObject(feedback)) return undefined;
  return typeof feedback.blockReason === 'string' ? feedback.blockReason : undefined;
}

/** `responseId` and `modelVersion`, when present. */
export function responseMeta(response: Record<string, unknown>): { upstreamId?: string; model?: string } {
  const meta: { upstreamId?: string; model?: string } = {};
  if (typeof response.responseId === 'string') meta.upstreamId = response.responseId;
  if (typeof response.modelVersion === 'string') meta.model = response.modelVersion;
  return meta;
}

/**
 * Parses a non-stream `generateContent` answer. A blocked prompt (no candidates, a
 * `promptFeedback.blockReason`) is a `content_filter` finish with no text.
 * @see https://ai.google.dev/api/generate-content#method:-models.generatecontent
 */
export function parseChatResponse(json: unknown): IRChatResult {
  if (!isObject(json)) throw badResponse('the body is not a JSON object');
  const candidate = firstCandidate(json);
  const result: IRChatResult = {
    ...responseMeta(json),
    text: null,
    refusal: null,
    toolCalls: [],
    finishReason: 'stop',
    usage: normalizeUsage(json.usageMetadata),
  };
  if (!candidate) {
    if (promptBlockReason(json) === undefined) throw badResponse('no candidates and no block reason');
    return { ...result, finishReason: 'content_filter' };
  }
  const pieces = candidatePieces(candidate);
  const text = pieces.flatMap((p) => (p.kind === 'text' ? [p.text] : [])).join('');
  const reasoning = pieces.flatMap((p) => (p.kind === 'reasoning' ? [p.text] : [])).join('');
  const toolCalls: IRToolCall[] = pieces.flatMap((p) =>
    p.kind === 'function-call' ? [{ id: p.id, name: p.name, arguments: p.arguments }] : [],
  );
  result.text = text === '' ? null : text;
  if (reasoning !== '') result.reasoning = reasoning;
  result.toolCalls = toolCalls;
  result.finishReason = candidateFinishReason(candidate.finishReason, toolCalls.length > 0);
  return result;
}

/**
 * Parses a `batchEmbedContents` answer: `{ embeddings: [{ values: number[] }] }`, one per
 * input in order. Gemini reports no token counts for embeddings, so `promptTokens` is 0 here
 * and the gateway estimates the count for metering (marked as an estimate there).
 * @see https://ai.google.dev/api/embeddings#response-body_1
 */
export function parseEmbeddingsResponse(json: unknown): IREmbeddingsResult {
  if (!isObject(json) || !Array.isArray(json.embeddings)) throw badResponse('embeddings is not an array');
  const embeddings = json.embeddings.map((e: unknown) => {
    if (!isObject(e) || !Array.isArray(e.values) || !e.values.every((v) => typeof v === 'number')) {
      throw badResponse('an embedding has no numeric values');
    }
    return e.values as number[];
  });
  return { embeddings, promptTokens: 0 };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
