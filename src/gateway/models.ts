/**
 * GET /v1/models — OpenAI's list shape, plus context length and pricing (USD per million tokens).
 * @see https://platform.openai.com/docs/api-reference/models/list
 */
import type { Catalog } from '../routing/catalog.js';

export function listModels(catalog: Catalog, created: number): unknown {
  return {
    object: 'list',
    data: [...catalog.models.values()].map((m) => {
      const ep = m.endpoints[0]!;
      return {
        id: m.id,
        object: 'model',
        created,
        owned_by: m.id.includes('/') ? m.id.slice(0, m.id.indexOf('/')) : ep.provider,
        ...(m.name ? { name: m.name } : {}),
        kind: m.kind,
        ...(m.contextLength ? { context_length: m.contextLength } : {}),
        ...(m.maxOutputTokens ? { max_output_tokens: m.maxOutputTokens } : {}),
        ...(ep.pricing
          ? {
              pricing: {
                unit: 'usd_per_million_tokens',
                input: ep.pricing.input,
                output: ep.pricing.output,
                ...(ep.pricing.cachedInput !== undefined ? { cached_input: ep.pricing.cachedInput } : {}),
                ...(ep.pricing.cacheWrite !== undefined ? { cache_write: ep.pricing.cacheWrite } : {}),
                ...(ep.pricing.cacheWrite1h !== undefined ? { cache_write_1h: ep.pricing.cacheWrite1h } : {}),
                ...(ep.pricing.reasoning !== undefined ? { reasoning: ep.pricing.reasoning } : {}),
                ...(ep.pricing.request !== undefined ? { request: ep.pricing.request } : {}),
              },
            }
          : {}),
      };
    }),
  };
}
