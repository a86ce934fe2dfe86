import type { ProviderTarget } from '../provider.js';

/** Anthropic's base URL as its official SDKs use it (no `/v1`). */
export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';

/**
 * The API version this adapter speaks. Stable since 2023; new features arrive as request fields
 * or `anthropic-beta` headers, not new versions.
 * @see https://docs.anthropic.com/en/api/versioning
 */
export const ANTHROPIC_VERSION = '2023-06-01';

/**
 * The Messages endpoint for a configured base URL. Follows the official SDK convention: the base
 * URL is the origin (optionally with a path prefix, e.g. a proxy), and `/v1/messages` is appended.
 * @see https://docs.anthropic.com/en/api/messages
 */
export function anthropicMessagesUrl(baseUrl: string): string {
  const base = (baseUrl || ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, '');
  return `${base}/v1/messages`;
}

/**
 * Request headers: `x-api-key`, `anthropic-version`, `content-type`, then the configured static
 * headers, which win over the defaults (case-insensitively), so a config can pin another
 * `anthropic-version` or add `anthropic-beta`.
 * @see https://docs.anthropic.com/en/api/overview#authentication
 */
export function anthropicHeaders(target: ProviderTarget): Record<string, string> {
  const defaults: Record<string, string> = {
    'anthropic-version': ANTHROPIC_VERSION,
    'content-type': 'application/json',
  };
  if (target.apiKey) defaults['x-api-key'] = target.apiKey;
  const extra = target.headers ?? {};
  const overridden = new Set(Object.keys(extra).map((k) => k.toLowerCase()));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(defaults)) {
    if (!overridden.has(k)) headers[k] = v;
  }
  return { ...headers, ...extra };
}
