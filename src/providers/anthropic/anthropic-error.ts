import { GatewayError, parseRetryAfter, upstreamHttpError } from '../../ir/errors.js';

/**
 * The HTTP status Anthropic uses for each error `type`. Used to classify an `error` event that
 * arrives inside a 200 stream, where the only hint is the type.
 * @see https://docs.anthropic.com/en/api/errors
 */
const STATUS_BY_ERROR_TYPE: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/** The `{type:'error', error:{type, message}}` body Anthropic sends with every error. */
interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

function isAnthropicErrorBody(v: unknown): v is AnthropicErrorBody {
  if (typeof v !== 'object' || v === null) return false;
  const err = (v as { error?: unknown }).error;
  if (typeof err !== 'object' || err === null) return false;
  const { type, message } = err as { type?: unknown; message?: unknown };
  return typeof type === 'string' && typeof message === 'string';
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function headerValue(
  headers: Record<string, string | string[] | undefined>,
  name: string,
): string | string[] | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return v;
  }
  return undefined;
}

/**
 * Maps a non-2xx Anthropic answer to a gateway error. The upstream's message is kept (it may go
 * back to the client, never to a log); a body that is not Anthropic's error JSON (e.g. an HTML
 * page from a proxy) gives a generic message naming the status.
 * @see https://docs.anthropic.com/en/api/errors
 */
export function parseAnthropicError(
  status: number,
  bodyText: string,
  headers: Record<string, string | string[] | undefined>,
): GatewayError {
  const retryAfter = parseRetryAfter(headerValue(headers, 'retry-after'));
  const body = tryParseJson(bodyText);
  const message = isAnthropicErrorBody(body)
    ? body.error.message
    : `Anthropic returned HTTP ${status}${bodyText.trim() ? ' with a body that is not an Anthropic error' : ''}.`;
  return upstreamHttpError(status, message, retryAfter);
}

/**
 * Maps an `error` event received mid-stream (the HTTP status was already 200) to a gateway
 * error, classified by the Anthropic error type (e.g. `overloaded_error` → upstream unavailable).
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming#error-events
 */
export function anthropicStreamError(errorType: string | undefined, message: string | undefined): GatewayError {
  const status = (errorType && STATUS_BY_ERROR_TYPE[errorType]) || 500;
  return upstreamHttpError(status, message || `Anthropic stream error (${errorType ?? 'unknown'}).`);
}

/** Extracts `{type, message}` from a parsed `error` event payload, if it has that shape. */
export function errorEventFields(payload: unknown): { type?: string; message?: string } {
  return isAnthropicErrorBody(payload) ? { type: payload.error.type, message: payload.error.message } : {};
}
