/**
 * One undici `Pool` per provider: keep-alive connections, connect/headers/body timeouts composed
 * once, so adapters never deal with transport. Requests go out with `pool.request`.
 * @see https://undici.nodejs.org/#/docs/api/Pool
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { GatewayError } from '../ir/errors.js';
import type { ProviderConfig } from '../config/schema.js';
import type { UpstreamRequest } from '../providers/provider.js';

export interface UpstreamResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

export class UpstreamClient {
  private readonly pool: Pool;
  private readonly origin: string;

  constructor(private readonly cfg: ProviderConfig, baseUrl: string) {
    this.origin = new URL(baseUrl).origin;
    this.pool = new Pool(this.origin, {
      connections: cfg.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      connect: { timeout: cfg.timeouts.connect },
      headersTimeout: cfg.timeouts.headers,
      bodyTimeout: cfg.timeouts.body,
    });
  }

  /** Sends a POST; maps transport failures to gateway errors (never with content). */
  async post(up: UpstreamRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    const url = new URL(up.url);
    if (url.origin !== this.origin) {
      throw new GatewayError('MR_ERR_INTERNAL', 'Upstream URL does not match the provider origin.');
    }
    try {
      const res = await this.pool.request({
        method: 'POST',
        path: url.pathname + url.search,
        headers: up.headers,
        body: up.body,
        signal,
      });
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw transportError(err, this.cfg.id);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Maps undici and socket errors to the catalogue; the message names the provider, never content. */
export function transportError(err: unknown, providerId: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: string })?.code ?? '';
  if (err instanceof undiciErrors.ConnectTimeoutError || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new GatewayError('MR_ERR_UPSTREAM_TIMEOUT', `Timed out connecting to provider '${providerId}'.`);
  }
  if (err instanceof undiciErrors.HeadersTimeoutError || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new GatewayError('MR_ERR_UPSTREAM_TIMEOUT', `Provider '${providerId}' did not answer in time.`);
  }
  if (err instanceof undiciErrors.BodyTimeoutError || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('MR_ERR_UPSTREAM_TIMEOUT', `Provider '${providerId}' stopped sending data.`);
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH') {
    return new GatewayError('MR_ERR_UPSTREAM_UNAVAILABLE', `Cannot connect to provider '${providerId}'.`);
  }
  return new GatewayError('MR_ERR_UPSTREAM_ERROR', `Connection to provider '${providerId}' failed.`);
}
