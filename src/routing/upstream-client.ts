/**
 * One undici `Pool` per provider: keep-alive connections, connect/headers/body timeouts composed
 * once, so adapters never deal with transport. Requests go out with `pool.dispatch` and a small
 * handler — no response stream object, no async iterator, no AbortController per request —
 * because the relay is the hot path.
 * @see https://undici.nodejs.org/#/docs/api/Dispatcher?id=dispatcherdispatchoptions-handler
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { GatewayError } from '../ir/errors.js';
import type { ProviderConfig } from '../config/schema.js';
import type { UpstreamRequest } from '../providers/provider.js';

export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** Receives an upstream body once the relay has looked at the status. */
export interface BodyConsumer {
  data(chunk: Buffer): void;
  end(): void;
  /** The transfer failed (timeout, reset, abort); never carries content. */
  error(err: GatewayError): void;
}

/**
 * One upstream request in flight. `started` resolves when the status and headers arrive (or
 * rejects with a gateway error before that); the body is then taken with `consume` or `text`.
 *
 * It implements undici's callback interface (`onConnect`, `onHeaders`, `onData`, `onComplete`,
 * `onError`) rather than the controller one (`onRequestStart`, `onResponseStart`, …): undici
 * adapts the latter to the former with an extra object per request and parses every response's
 * headers (and trailers) into objects first, while the relay needs them only for an error
 * answer — so they are parsed here, on first use.
 */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  statusCode = 0;
  readonly started: Promise<void>;
  #resolveStart!: () => void;
  #rejectStart!: (err: GatewayError) => void;
  #abort: ((err?: Error) => void) | undefined;
  #resumeUpstream: (() => void) | undefined;
  #paused = false;
  #rawHeaders: Buffer[] | undefined;
  #headers: UpstreamHeaders | undefined;
  #abortReason: Error | undefined;
  #consumer: BodyConsumer | undefined;
  #buffered: Buffer[] = [];
  #ended = false;
  #failed: GatewayError | undefined;
  #isStarted = false;
  #clearTotal: (() => void) | undefined;

  constructor(private readonly providerId: string) {
    this.started = new Promise<void>((resolve, reject) => {
      this.#resolveStart = resolve;
      this.#rejectStart = reject;
    });
    // A failure before anyone awaits `started` must not become an unhandled rejection.
    this.started.catch(() => {});
  }

  /** The response headers, names lower-cased; a repeated header's values in an array. */
  get headers(): UpstreamHeaders {
    if (this.#headers === undefined) this.#headers = headersOf(this.#rawHeaders);
    return this.#headers;
  }

  /**
   * The response's media type: `content-type` without parameters, lower-cased ('' when absent).
   * Read from the raw headers without parsing the others.
   */
  get mediaType(): string {
    const raw = this.#rawHeaders;
    if (raw === undefined) return '';
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 12 && name.toString('latin1').toLowerCase() === 'content-type') {
        return raw[i + 1]!.toString('latin1').split(';', 1)[0]!.trim().toLowerCase();
      }
    }
    return '';
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#abortReason) abort(this.#abortReason);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.#resumeUpstream = resume;
    if (statusCode < 200) return true; // 1xx informational
    this.statusCode = statusCode;
    this.#rawHeaders = rawHeaders;
    this.#isStarted = true;
    this.#resolveStart();
    return !this.#paused;
  }

  onData(chunk: Buffer): boolean {
    if (this.#consumer) this.#consumer.data(chunk);
    else this.#buffered.push(chunk);
    return !this.#paused;
  }

  onComplete(): void {
    this.#clearTotal?.();
    this.#ended = true;
    this.#consumer?.end();
  }

  onError(err: Error): void {
    this.#clearTotal?.();
    const gwErr = transportError(err, this.providerId);
    this.#failed = gwErr;
    if (!this.#isStarted) this.#rejectStart(gwErr);
    else this.#consumer?.error(gwErr);
  }

  /**
   * Cancels the request (the client went away, or `reason`: e.g. the total timeout). Safe to call
   * at any time, more than once.
   */
  abort(reason?: GatewayError): void {
    if (this.#abortReason || this.#ended || this.#failed) return;
    this.#abortReason = reason ?? new Error('client closed the request');
    this.#abort?.(this.#abortReason);
  }

  /** Ends the call with a timeout error if it is still running after `ms` (the provider's total timeout). */
  limitTotal(ms: number): void {
    const timer = setTimeout(() => {
      this.abort(new GatewayError('MR_ERR_UPSTREAM_TIMEOUT', `Provider '${this.providerId}' did not finish within ${ms} ms.`));
    }, ms);
    timer.unref();
    this.#clearTotal = () => clearTimeout(timer);
  }

  /** Stops reading the upstream until `resume` (the client cannot take more). */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#resumeUpstream?.();
  }

  /** Starts delivering the body (after `started`); chunks that came early are delivered first. */
  consume(consumer: BodyConsumer): void {
    this.#consumer = consumer;
    const early = this.#buffered;
    this.#buffered = [];
    for (const chunk of early) consumer.data(chunk);
    if (this.#failed) consumer.error(this.#failed);
    else if (this.#ended) consumer.end();
  }

  /** The whole body as text, up to `limit` bytes; past that the upstream is treated as broken. */
  text(limit: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      this.consume({
        data: (chunk) => {
          if (done) return;
          size += chunk.length;
          if (size > limit) {
            done = true;
            this.abort();
            reject(new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${this.providerId}' sent an oversized response.`));
            return;
          }
          chunks.push(chunk);
        },
        end: () => {
          if (done) return;
          done = true;
          resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
        },
        error: (err) => {
          if (done) return;
          done = true;
          reject(err);
        },
      });
    });
  }
}

export class UpstreamClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly paths = new Map<string, string>();

  constructor(
    private readonly cfg: ProviderConfig,
    baseUrl: string,
  ) {
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

  /** Sends a POST. Await `call.started` for the status; transport failures are gateway errors. */
  post(up: UpstreamRequest<string | Buffer>): UpstreamCall {
    const call = new UpstreamCall(this.cfg.id);
    const path = this.pathOf(up.url);
    if (path === undefined) {
      call.onError(new GatewayError('MR_ERR_INTERNAL', 'Upstream URL does not match the provider origin.'));
      return call;
    }
    if (this.cfg.timeouts.total !== undefined) call.limitTotal(this.cfg.timeouts.total);
    this.pool.dispatch({ method: 'POST', path, headers: up.headers, body: up.body }, call);
    return call;
  }

  /**
   * The path and query of an absolute URL on this provider's origin, undefined for any other
   * origin. Remembered per URL: an endpoint's URLs are a handful of constants.
   */
  private pathOf(absolute: string): string | undefined {
    const known = this.paths.get(absolute);
    if (known !== undefined) return known;
    const url = new URL(absolute);
    if (url.origin !== this.origin) return undefined;
    const path = url.pathname + url.search;
    if (this.paths.size >= 1_000) this.paths.clear();
    this.paths.set(absolute, path);
    return path;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Raw header pairs (`[name, value, …]`) as an object. */
function headersOf(raw: Buffer[] | undefined): UpstreamHeaders {
  const out: UpstreamHeaders = {};
  if (raw === undefined) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else out[name] = [seen, value];
  }
  return out;
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
