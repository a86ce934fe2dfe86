/**
 * The model catalog: client model ids → the endpoints that serve them. Built once from config.
 * `resolve` gives a model's first endpoint; `endpoints` gives all of them, in config order, for
 * the router (src/routing/router.ts), which applies fallbacks, weights and data policies.
 */
import type { Config, EndpointConfig, ModelConfig, Pricing, ProviderConfig } from '../config/schema.js';
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

/** One of a model's endpoints: a Route plus what the router needs to choose among them. */
export interface EndpointRoute extends Route {
  /** Position in the model's `endpoints` (0: the first). */
  index: number;
  endpoint: EndpointConfig;
  /**
   * `provider:upstreamModel`: the key of the endpoint's circuit breaker and health statistics,
   * shared by every catalog model served by the same provider model. Provider ids contain no `:`.
   */
  key: string;
}

/** `provider:upstreamModel`, see `EndpointRoute.key`. */
export function endpointKey(providerId: string, upstreamModel: string): string {
  return `${providerId}:${upstreamModel}`;
}

export class Catalog {
  readonly providers = new Map<string, ProviderRuntime>();
  readonly models = new Map<string, ModelConfig>();
  private readonly routes = new Map<string, readonly EndpointRoute[]>();

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
      const routes = m.endpoints.map((ep, index): EndpointRoute => {
        const provider = this.providers.get(ep.provider);
        if (!provider) throw new Error(`model '${m.id}': unknown provider '${ep.provider}'`);
        return {
          modelId: m.id,
          model: m,
          provider,
          upstreamModel: ep.model,
          pricing: ep.pricing,
          prices: priceTable(ep.pricing),
          index,
          endpoint: ep,
          key: endpointKey(provider.id, ep.model),
        };
      });
      this.routes.set(m.id, Object.freeze(routes));
    }
  }

  /** The route of a client model id's first endpoint, or 404 in the catalogue's terms. */
  resolve(modelId: unknown, kind: 'chat' | 'embedding' = 'chat'): Route {
    return this.lookup(modelId, kind, 'model')[0]!;
  }

  /**
   * Every endpoint of a client model id, in config order (at least one), with the same errors as
   * `resolve`; `param` names the request field in them (`model`, or `models` for a fallback).
   */
  endpoints(modelId: unknown, kind: 'chat' | 'embedding' = 'chat', param = 'model'): readonly EndpointRoute[] {
    return this.lookup(modelId, kind, param);
  }

  private lookup(modelId: unknown, kind: 'chat' | 'embedding', param: string): readonly EndpointRoute[] {
    if (typeof modelId !== 'string' || !modelId) {
      throw new GatewayError('MR_ERR_INVALID_REQUEST', `'${param}' is required and must be a string.`, { param });
    }
    const routes = this.routes.get(modelId);
    if (!routes) {
      throw new GatewayError(
        'MR_ERR_MODEL_NOT_FOUND',
        `The model '${modelId}' does not exist or is not enabled on this gateway. GET /v1/models lists the available models.`,
        { param },
      );
    }
    const model = routes[0]!.model;
    if (model.kind !== kind) {
      throw new GatewayError(
        'MR_ERR_INVALID_REQUEST',
        `The model '${modelId}' is ${model.kind === 'embedding' ? 'an embedding' : 'a chat'} model; it cannot serve this endpoint.`,
        { param },
      );
    }
    return routes;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.client.close()));
  }
}
