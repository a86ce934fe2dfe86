/**
 * OpenAI and OpenAI-compatible upstreams: base URL as the official `openai` SDK takes it
 * (`https://api.openai.com/v1`, paths appended), bearer authentication.
 * @see https://platform.openai.com/docs/api-reference/authentication
 */
import type { ProviderTarget } from '../provider.js';

export function openaiUrl(target: ProviderTarget, path: string): string {
  const base = target.baseUrl;
  return (base.endsWith('/') ? base.replace(/\/+$/, '') : base) + path;
}

/** Built once per target: the same for every request, and read-only (undici only reads them). */
const HEADERS = new WeakMap<ProviderTarget, Readonly<Record<string, string>>>();

export function openaiHeaders(target: ProviderTarget): Readonly<Record<string, string>> {
  let h = HEADERS.get(target);
  if (h === undefined) {
    const built: Record<string, string> = { 'content-type': 'application/json', ...target.headers };
    if (target.apiKey) built.authorization = `Bearer ${target.apiKey}`;
    h = Object.freeze(built);
    HEADERS.set(target, h);
  }
  return h;
}
