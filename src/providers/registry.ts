/** Provider type → adapter. The only place that knows every provider. */
import { anthropicAdapter } from './anthropic/index.js';
import { geminiAdapter } from './gemini/index.js';
import { openaiAdapter, openaiCompatibleAdapter } from './openai/index.js';
import type { ProviderAdapter, ProviderType } from './provider.js';

export const ADAPTERS: Record<ProviderType, ProviderAdapter> = {
  openai: openaiAdapter,
  'openai-compatible': openaiCompatibleAdapter,
  anthropic: anthropicAdapter,
  gemini: geminiAdapter,
};
