/**
 * The model catalog: client model ids → the endpoint that serves them. Built once from config.
 * (Fallbacks, weights and data policies come with routing controls.)
 */
import type { Config, ModelConfig, Pricing, ProviderConfig } from '../config/schema.js';
import { DEFAULT_BASE_URLS } from '../config/schema.js';
import { priceTable, type PriceTable } from '../billing/cost.js';
import { GatewayError } from '../ir/errors.js';
import { ADAPTERS } from '../providers/registry.js';
import type { ProviderAdapter, ProviderTarget } from '../providers/provider.js';
import { UpstreamClient } from './upstream-client.js';

/** A configured provider, ready to send: adapter, target and connection pool. */
export interface ProviderRuntime {
  id: string;
  config: ProviderConfig;
  adapter: ProviderAdapter;
  target: ProviderTarget;
  client: UpstreamClient;
}

export interface Route {
  /** The id the client asked for. */
  modelId: string;
  model: ModelConfig;
  provider: ProviderRuntime;
  upstreamModel: string;
  pricing: Pricing | undefined;
  /** The pricing in integer nano-USD, computed once (all zero when the endpoint has none). */
  prices: PriceTable;
}

export class Catalog {
  readonly providers = new Map<string, ProviderRuntime>();
  readonly models = new Map<string, ModelConfig>();
  private readonly routes = new Map<string, Route>();

  constructor(config: Pick<Config, 'providers' | 'models'>) {
    for (const p of config.providers) {
      const baseUrl = p.baseUrl ?? DEFAULT_BASE_URLS[p.type];
      if (!baseUrl) throw new Error(`provider '${p.id}': baseUrl is required for type ${p.type}`);
      const target: ProviderTarget = { baseUrl };
      if (p.apiKey) target.apiKey = p.apiKey;
      if (p.headers) target.headers = p.headers;
      this.providers.set(p.id, { id: p.id, config: p, adapter: ADAPTERS[p.type], target, client: new UpstreamClient(p, baseUrl) });
    }
    for (const m of config.models) {
      this.models.set(m.id, m);
      const ep = m.endpoints[0]!;
      const provider = this.providers.get(ep.provider);
      if (!provider) throw new Error(`model '${m.id}': unknown provider '${ep.provider}'`);
      this.routes.set(m.id, { modelId: m.id, model: m, provider, upstreamModel: ep.model, pricing: ep.pricing, prices: priceTable(ep.pricing) });
    }
  }

  /** The route for a client model id, or 404 in the catalogue's terms. */
  resolve(modelId: unknown, kind: 'chat' | 'embedding' = 'chat'): Route {
    if (typeof modelId !== 'string' || !modelId) {
      throw new GatewayError('MR_ERR_INVALID_REQUEST', "'model' is required and must be a string.", { param: 'model' });
    }
    const route = this.routes.get(modelId);
    if (!route) {
      throw new GatewayError(
        'MR_ERR_MODEL_NOT_FOUND',
        `The model '${modelId}' does not exist or is not enabled on this gateway. GET /v1/models lists the available models.`,
        { param: 'model' },
      );
    }
    if (route.model.kind !== kind) {
      throw new GatewayError(
        'MR_ERR_INVALID_REQUEST',
        `The model '${modelId}' is ${route.model.kind === 'embedding' ? 'an embedding' : 'a chat'} model; it cannot serve this endpoint.`,
        { param: 'model' },
      );
    }
    return route;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.client.close()));
  }
}
