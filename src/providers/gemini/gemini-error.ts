/**
 * Gemini error bodies → gateway errors. Gemini answers errors in Google's JSON error shape
 * `{ error: { code, message, status, details? } }` (streams may wrap it in an array).
 * @see https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
 */
import { GatewayError, parseRetryAfter, upstreamHttpError } from '../../ir/errors.js';

interface GoogleErrorDetail {
  '@type'?: unknown;
  reason?: unknown;
  retryDelay?: unknown;
}

/** The `error` object of a Google error body, or undefined when the value is not one. */
export function googleErrorObject(value: unknown): Record<string, unknown> | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v !== 'object' || v === null) return undefined;
  const error = (v as { error?: unknown }).error;
  return typeof error === 'object' && error !== null && !Array.isArray(error) ? (error as Record<string, unknown>) : undefined;
}

/**
 * Seconds from the `google.rpc.RetryInfo` detail (`retryDelay: "37s"`), which Gemini sends on
 * 429 instead of a `retry-after` header.
 * @see https://cloud.google.com/apis/design/errors#error_details
 */
export function retryDelaySeconds(details: unknown): number | undefined {
  if (!Array.isArray(details)) return undefined;
  for (const d of details as GoogleErrorDetail[]) {
    if (typeof d?.retryDelay !== 'string') continue;
    const m = /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay);
    if (m) return Math.ceil(Number(m[1]));
  }
  return undefined;
}

/** Gemini reports a bad API key as 400 INVALID_ARGUMENT with an `ErrorInfo` reason. */
function isApiKeyError(details: unknown): boolean {
  if (!Array.isArray(details)) return false;
  return (details as GoogleErrorDetail[]).some(
    (d) => typeof d?.reason === 'string' && /^API_KEY_(INVALID|EXPIRED)$/.test(d.reason),
  );
}

/**
 * A gateway error from a Google error object. `httpStatus` is the HTTP status of the answer
 * (for an error inside a 200 stream, the object's own `code`).
 */
export function errorFromGoogleError(
  httpStatus: number,
  error: Record<string, unknown>,
  retryAfterHeader?: number,
): GatewayError {
  const message = typeof error.message === 'string' && error.message !== '' ? error.message : `Gemini returned HTTP ${httpStatus}.`;
  const retryAfter = retryAfterHeader ?? retryDelaySeconds(error.details);
  if (isApiKeyError(error.details)) {
    const opts = retryAfter === undefined ? { upstreamStatus: httpStatus } : { upstreamStatus: httpStatus, retryAfter };
    return new GatewayError('MR_ERR_UPSTREAM_AUTH', `Upstream rejected the gateway's credentials: ${message}`, opts);
  }
  return upstreamHttpError(httpStatus, message, retryAfter);
}

/**
 * Maps a non-2xx Gemini answer to a gateway error. A body that is not a Google error gets a
 * generic message (its text is never echoed: it may be an HTML page from a proxy).
 * @see https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
 */
export function parseGeminiError(
  status: number,
  bodyText: string,
  headers: Record<string, string | string[] | undefined>,
): GatewayError {
  const retryAfter = parseRetryAfter(headers['retry-after']);
  let json: unknown;
  try {
    json = JSON.parse(bodyText);
  } catch {
    json = undefined;
  }
  const error = googleErrorObject(json);
  if (error) return errorFromGoogleError(status, error, retryAfter);
  return upstreamHttpError(status, `Gemini returned HTTP ${status}.`, retryAfter);
}
