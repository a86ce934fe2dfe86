/**
 * The error catalogue. One stable code per condition, with the HTTP status the official SDKs
 * map to their error classes, the OpenAI error `type`, and whether a retry may help.
 * Messages are written for the client; they never carry request content, and an upstream's
 * error text is attached only as `upstreamMessage`, which may go to the client but never to a log.
 */
export type ErrorCode =
  | 'MR_ERR_INVALID_REQUEST'
  | 'MR_ERR_INVALID_JSON'
  | 'MR_ERR_UNSUPPORTED_PARAMETER'
  | 'MR_ERR_UNAUTHORIZED'
  | 'MR_ERR_INSUFFICIENT_CREDITS'
  | 'MR_ERR_FORBIDDEN'
  | 'MR_ERR_NOT_FOUND'
  | 'MR_ERR_MODEL_NOT_FOUND'
  | 'MR_ERR_UNSUPPORTED_ENDPOINT'
  | 'MR_ERR_PAYLOAD_TOO_LARGE'
  | 'MR_ERR_RATE_LIMITED'
  | 'MR_ERR_UPSTREAM_BAD_REQUEST'
  | 'MR_ERR_UPSTREAM_AUTH'
  | 'MR_ERR_UPSTREAM_RATE_LIMITED'
  | 'MR_ERR_UPSTREAM_ERROR'
  | 'MR_ERR_UPSTREAM_UNAVAILABLE'
  | 'MR_ERR_UPSTREAM_TIMEOUT'
  | 'MR_ERR_UPSTREAM_BAD_RESPONSE'
  | 'MR_ERR_INTERNAL';

interface CatalogEntry {
  status: number;
  type: string;
  retryable: boolean;
}

export const ERROR_CATALOG: Record<ErrorCode, CatalogEntry> = {
  MR_ERR_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', retryable: false },
  MR_ERR_INVALID_JSON: { status: 400, type: 'invalid_request_error', retryable: false },
  MR_ERR_UNSUPPORTED_PARAMETER: { status: 400, type: 'invalid_request_error', retryable: false },
  MR_ERR_UNAUTHORIZED: { status: 401, type: 'authentication_error', retryable: false },
  MR_ERR_INSUFFICIENT_CREDITS: { status: 402, type: 'insufficient_quota', retryable: false },
  MR_ERR_FORBIDDEN: { status: 403, type: 'permission_error', retryable: false },
  MR_ERR_NOT_FOUND: { status: 404, type: 'not_found_error', retryable: false },
  MR_ERR_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', retryable: false },
  MR_ERR_UNSUPPORTED_ENDPOINT: { status: 400, type: 'invalid_request_error', retryable: false },
  MR_ERR_PAYLOAD_TOO_LARGE: { status: 413, type: 'invalid_request_error', retryable: false },
  MR_ERR_RATE_LIMITED: { status: 429, type: 'rate_limit_error', retryable: true },
  MR_ERR_UPSTREAM_BAD_REQUEST: { status: 400, type: 'invalid_request_error', retryable: false },
  MR_ERR_UPSTREAM_AUTH: { status: 502, type: 'upstream_error', retryable: false },
  MR_ERR_UPSTREAM_RATE_LIMITED: { status: 429, type: 'rate_limit_error', retryable: true },
  MR_ERR_UPSTREAM_ERROR: { status: 502, type: 'upstream_error', retryable: true },
  MR_ERR_UPSTREAM_UNAVAILABLE: { status: 503, type: 'upstream_error', retryable: true },
  MR_ERR_UPSTREAM_TIMEOUT: { status: 504, type: 'timeout_error', retryable: true },
  MR_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, type: 'upstream_error', retryable: true },
  MR_ERR_INTERNAL: { status: 500, type: 'server_error', retryable: true },
};

export interface GatewayErrorOptions {
  /** The request field at fault (OpenAI's `param`). */
  param?: string | null;
  /** Override the catalogue status (e.g. an upstream 4xx passed through as is). */
  status?: number;
  /** The upstream's status code, when the error came from an upstream. */
  upstreamStatus?: number;
  /** Seconds, from an upstream or limiter `retry-after`. */
  retryAfter?: number;
  /** A finer reason than the code (e.g. which spending limit), rendered as `metadata.reason`. */
  reason?: string;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly retryable: boolean;
  readonly param: string | null;
  readonly upstreamStatus: number | undefined;
  readonly retryAfter: number | undefined;
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, opts: GatewayErrorOptions = {}) {
    super(message);
    const entry = ERROR_CATALOG[code];
    this.name = 'GatewayError';
    this.code = code;
    this.status = opts.status ?? entry.status;
    this.type = entry.type;
    this.retryable = entry.retryable;
    this.param = opts.param ?? null;
    this.upstreamStatus = opts.upstreamStatus;
    this.retryAfter = opts.retryAfter;
    this.reason = opts.reason;
  }
}

/** 400 naming the field at fault. */
export function invalidRequest(message: string, param?: string): GatewayError {
  return new GatewayError('MR_ERR_INVALID_REQUEST', message, { param: param ?? null });
}

/** 400 for a parameter the chosen upstream cannot honour, where dropping it would change meaning. */
export function unsupportedParameter(param: string, provider: string, why?: string): GatewayError {
  return new GatewayError(
    'MR_ERR_UNSUPPORTED_PARAMETER',
    `'${param}' is not supported by provider type '${provider}'${why ? `: ${why}` : ''}.`,
    { param },
  );
}

/**
 * Every message of the request is empty (no text, image or tool call): a provider that needs a
 * conversation turn has nothing to be sent.
 */
export function emptyConversation(): GatewayError {
  return invalidRequest("'messages' has no content: every message is empty.", 'messages');
}

/**
 * Maps an upstream HTTP error status to a gateway error. `message` is the upstream's own error
 * text (may reach the client, never a log).
 */
export function upstreamHttpError(
  status: number,
  message: string,
  retryAfter?: number,
): GatewayError {
  const opts: GatewayErrorOptions = { upstreamStatus: status };
  if (retryAfter !== undefined) opts.retryAfter = retryAfter;
  if (status === 401 || status === 403) {
    return new GatewayError('MR_ERR_UPSTREAM_AUTH', `Upstream rejected the gateway's credentials: ${message}`, opts);
  }
  if (status === 429) return new GatewayError('MR_ERR_UPSTREAM_RATE_LIMITED', message, opts);
  if (status === 408 || status === 504) return new GatewayError('MR_ERR_UPSTREAM_TIMEOUT', message, opts);
  if (status === 503 || status === 529) return new GatewayError('MR_ERR_UPSTREAM_UNAVAILABLE', message, opts);
  if (status === 413) return new GatewayError('MR_ERR_PAYLOAD_TOO_LARGE', message, opts);
  if (status === 404) return new GatewayError('MR_ERR_UPSTREAM_BAD_REQUEST', message, { ...opts, status: 404 });
  if (status === 422) return new GatewayError('MR_ERR_UPSTREAM_BAD_REQUEST', message, { ...opts, status: 422 });
  if (status >= 400 && status < 500) return new GatewayError('MR_ERR_UPSTREAM_BAD_REQUEST', message, opts);
  return new GatewayError('MR_ERR_UPSTREAM_ERROR', message, opts);
}

/** Seconds from a `retry-after` header value (delta-seconds or HTTP date). */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const n = Number(v);
  if (Number.isFinite(n) && n >= 0) return Math.ceil(n);
  const t = Date.parse(v);
  if (Number.isFinite(t)) return Math.max(0, Math.ceil((t - now) / 1000));
  return undefined;
}
