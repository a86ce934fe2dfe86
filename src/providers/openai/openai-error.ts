/**
 * OpenAI error bodies `{error: {message, type, param, code}}` → gateway errors.
 * @see https://platform.openai.com/docs/guides/error-codes
 */
import { GatewayError, parseRetryAfter, upstreamHttpError } from '../../ir/errors.js';

export function errorFromBody(status: number, body: unknown, retryAfter?: number): GatewayError {
  const e = (body as any)?.error;
  const message =
    typeof e?.message === 'string' && e.message
      ? e.message
      : typeof e === 'string'
        ? e
        : `Upstream answered with status ${status}.`;
  const err = upstreamHttpError(status, message, retryAfter);
  if (err.status === 400 && typeof e?.param === 'string') {
    return new GatewayError(err.code, message, { param: e.param, upstreamStatus: status, status: err.status });
  }
  return err;
}

export function parseOpenAIError(
  status: number,
  bodyText: string,
  headers: Record<string, string | string[] | undefined>,
): GatewayError {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    body = undefined;
  }
  return errorFromBody(status, body, parseRetryAfter(headers['retry-after']));
}
