/**
 * Decoder of a Gemini `streamGenerateContent?alt=sse` stream. Each SSE `data` is a whole
 * `GenerateContentResponse` chunk (no event names, no `[DONE]`): text arrives as deltas,
 * function calls arrive whole, the last chunk carries `finishReason` and the final usage.
 * @see https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
 */
import { GatewayError } from '../../ir/errors.js';
import type { IRStreamPart, SSEEvent, StreamDecoder } from '../../ir/stream-part.js';
import type { IRUsage } from '../../ir/usage.js';
import {
  badResponse,
  candidateFinishReason,
  candidatePieces,
  firstCandidate,
  isObject,
  normalizeUsage,
  promptBlockReason,
  responseMeta,
} from './convert-response.js';
import { errorFromGoogleError, googleErrorObject } from './gemini-error.js';

/**
 * Creates a decoder for one stream. It never throws: malformed data or an `error` object in
 * the stream becomes a terminal `error` part. Usage is reported once the finish is known
 * (Gemini repeats running totals on every chunk) and again if a later chunk updates it.
 * @see https://ai.google.dev/gemini-api/docs/text-generation#streaming-responses
 */
export function createGeminiStreamDecoder(): StreamDecoder {
  let started = false;
  let finished = false;
  let failed = false;
  let toolCallCount = 0;
  let pendingUsage: IRUsage | undefined;

  const fail = (error: GatewayError): IRStreamPart[] => {
    failed = true;
    return [{ type: 'error', error }];
  };

  const decodeChunk = (chunk: Record<string, unknown>): IRStreamPart[] => {
    const out: IRStreamPart[] = [];
    if (!started) {
      started = true;
      out.push({ type: 'start', ...responseMeta(chunk) });
    }
    if (chunk.usageMetadata !== undefined) pendingUsage = normalizeUsage(chunk.usageMetadata);
    const candidate = firstCandidate(chunk);
    if (candidate) {
      for (const piece of candidatePieces(candidate)) {
        if (piece.kind === 'text') out.push({ type: 'text-delta', text: piece.text });
        else if (piece.kind === 'reasoning') out.push({ type: 'reasoning-delta', text: piece.text });
        else {
          const index = toolCallCount++;
          out.push({ type: 'tool-call-start', index, id: piece.id, name: piece.name });
          out.push({ type: 'tool-call-delta', index, argumentsDelta: piece.arguments });
        }
      }
      if (candidate.finishReason !== undefined && !finished) {
        finished = true;
        out.push({ type: 'finish', finishReason: candidateFinishReason(candidate.finishReason, toolCallCount > 0) });
      }
    } else if (promptBlockReason(chunk) !== undefined && !finished) {
      finished = true;
      out.push({ type: 'finish', finishReason: 'content_filter' });
    }
    if (finished && pendingUsage) {
      out.push({ type: 'usage', usage: pendingUsage });
      pendingUsage = undefined;
    }
    return out;
  };

  return {
    push(event: SSEEvent): IRStreamPart[] {
      if (failed) return [];
      const data = event.data.trim();
      if (data === '') return [];
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        return fail(badResponse('a stream event is not JSON'));
      }
      const error = googleErrorObject(chunk);
      if (error) {
        const code = typeof error.code === 'number' && error.code >= 400 ? error.code : 500;
        return fail(errorFromGoogleError(code, error));
      }
      if (!isObject(chunk)) return fail(badResponse('a stream event is not a JSON object'));
      try {
        return decodeChunk(chunk);
      } catch (err) {
        return fail(err instanceof GatewayError ? err : badResponse('a stream event could not be read'));
      }
    },
    end(): IRStreamPart[] {
      if (failed) return [];
      if (!finished) return fail(badResponse('the stream ended without a finish reason'));
      if (!pendingUsage) return [];
      const usage = pendingUsage;
      pendingUsage = undefined;
      return [{ type: 'usage', usage }];
    },
  };
}
