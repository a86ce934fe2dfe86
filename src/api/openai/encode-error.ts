/**
 * Gateway errors in OpenAI's error shape `{error: {message, type, param, code}}`.
 * @see https://platform.openai.com/docs/guides/error-codes
 */
import { GatewayError } from '../../ir/errors.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | number | null; metadata?: { reason: string } };
}

/**
 * Payment errors carry `code: 402` (as OpenRouter sends them) and name the limit that refused
 * the request in `metadata.reason`; every other error carries its catalogue code.
 */
export function encodeError(err: GatewayError): OpenAIErrorBody {
  if (err.status === 402) {
    return { error: { message: err.message, type: err.type, param: err.param, code: 402, metadata: { reason: err.reason ?? err.code } } };
  }
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

/** The same error as one SSE event, to end a stream that failed after it started. */
export function encodeStreamError(err: GatewayError): string {
  return `data: ${JSON.stringify(encodeError(err))}\n\n`;
}
