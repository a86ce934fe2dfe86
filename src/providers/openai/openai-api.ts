/**
 * OpenAI and OpenAI-compatible upstreams: base URL as the official `openai` SDK takes it
 * (`https://api.openai.com/v1`, paths appended), bearer authentication.
 * @see https://platform.openai.com/docs/api-reference/authentication
 */
import type { ProviderTarget } from '../provider.js';

export function openaiUrl(target: ProviderTarget, path: string): string {
  return target.baseUrl.replace(/\/+$/, '') + path;
}

export function openaiHeaders(target: ProviderTarget): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', ...target.headers };
  if (target.apiKey) h.authorization = `Bearer ${target.apiKey}`;
  return h;
}
