/**
 * Routing controls a client may send in an OpenAI-style request body, compatible with
 * OpenRouter's: `models` (a fallback list of model ids) and `provider` (which endpoints may
 * serve the request, in which order, under which data policy and price ceiling). Parsing is
 * strict: an unknown field inside `provider` or a value of the wrong type is a 400 naming its
 * path, never ignored. See docs/routing.md.
 *
 * Provider names in `order`, `only` and `ignore` are this gateway's provider ids (`providers[].id`).
 */
import { invalidRequest } from '../ir/errors.js';

export type ProviderSort = 'price' | 'latency' | 'throughput';
export type DataCollection = 'allow' | 'deny';
/** Who imposed a data policy: the request's `provider` object or the account's defaults. */
export type PolicySource = 'request' | 'account';

/** Price ceilings: `prompt` and `completion` in USD per million tokens, `request` in USD per request. */
export interface MaxPrice {
  prompt?: number;
  completion?: number;
  request?: number;
}

/** The effective `provider` controls of a request (account defaults applied). */
export interface ProviderControls {
  /** Provider ids to try first, in this order. */
  order?: string[];
  /** Only these provider ids may serve the request. */
  only?: string[];
  /** These provider ids may not serve the request. */
  ignore?: string[];
  /** false: only the first model's ordered endpoints (or its single chosen endpoint) are tried. Default true. */
  allowFallbacks: boolean;
  sort?: ProviderSort;
  /** Only endpoints configured `zdr: true` may serve the request. */
  zdr: boolean;
  /** `deny`: only endpoints configured `dataCollection: deny` may serve the request. */
  dataCollection: DataCollection;
  maxPrice?: MaxPrice;
  /** Where each restrictive data policy came from (absent while the policy is not restrictive). */
  policySource: { zdr?: PolicySource; dataCollection?: PolicySource };
}

export interface RequestControls {
  /** The models to try, in order: the request's `model` first, then `models` (duplicates removed). */
  models: string[];
  provider: ProviderControls;
}

/** An account's data policy; a request may make it stricter, never looser. */
export interface AccountRoutingDefaults {
  zdr?: boolean;
  dataCollection?: DataCollection;
}

/** The request body fields read here (and to be removed before the body goes upstream). */
export const REQUEST_CONTROL_FIELDS: readonly string[] = ['models', 'provider'];

/** At most this many entries in `models` and in each provider list. */
export const MAX_MODELS = 10;
export const MAX_PROVIDER_LIST = 64;

const PROVIDER_FIELDS = ['order', 'only', 'ignore', 'allow_fallbacks', 'sort', 'zdr', 'data_collection', 'max_price'] as const;
const MAX_PRICE_FIELDS = ['prompt', 'completion', 'request'] as const;
const SORTS: readonly ProviderSort[] = ['price', 'latency', 'throughput'];
const DATA_COLLECTION: readonly DataCollection[] = ['allow', 'deny'];

/** The controls of a request that sends none, for an account without defaults. */
export function defaultProviderControls(): ProviderControls {
  return { allowFallbacks: true, zdr: false, dataCollection: 'allow', policySource: {} };
}

/**
 * Reads `model`, `models` and `provider` from a request body and merges the account's data
 * policy in. Throws a 400 (`MR_ERR_INVALID_REQUEST`) naming the field at fault. `null` counts as
 * absent, as for every other optional request field.
 */
export function parseRequestControls(body: Record<string, unknown>, account?: AccountRoutingDefaults): RequestControls {
  const models = parseModels(body);
  const provider = applyAccountDefaults(parseProvider(body.provider), account);
  return { models, provider };
}

/**
 * Account defaults merged into request controls: the stricter value wins, so a request can
 * require ZDR or deny data collection on top of its account, never relax what the account requires.
 */
export function applyAccountDefaults(controls: ProviderControls, account?: AccountRoutingDefaults): ProviderControls {
  if (!account) return controls;
  const out: ProviderControls = { ...controls, policySource: { ...controls.policySource } };
  if (account.zdr === true) {
    out.zdr = true;
    out.policySource.zdr = 'account';
  }
  if (account.dataCollection === 'deny') {
    out.dataCollection = 'deny';
    out.policySource.dataCollection = 'account';
  }
  return out;
}

/** A shallow copy of the body without `models` and `provider`, for the upstream request. */
export function withoutRequestControls<T extends Record<string, unknown>>(body: T): T {
  if (!('models' in body) && !('provider' in body)) return body;
  const out: Record<string, unknown> = { ...body };
  delete out.models;
  delete out.provider;
  return out as T;
}

function parseModels(body: Record<string, unknown>): string[] {
  const model = body.model;
  const list = body.models;
  const out: string[] = [];
  if (model !== undefined && model !== null) {
    if (typeof model !== 'string' || !model) throw invalidRequest("'model' must be a non-empty string.", 'model');
    out.push(model);
  }
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw invalidRequest("'models' must be an array of model ids.", 'models');
    if (list.length > MAX_MODELS) throw invalidRequest(`'models' may list at most ${MAX_MODELS} model ids.`, 'models');
    list.forEach((m: unknown, i) => {
      if (typeof m !== 'string' || !m) throw invalidRequest(`'models[${i}]' must be a non-empty string.`, `models[${i}]`);
      if (!out.includes(m)) out.push(m);
    });
  }
  if (out.length === 0) throw invalidRequest("'model' is required and must be a string.", 'model');
  return out;
}

function parseProvider(value: unknown): ProviderControls {
  const out = defaultProviderControls();
  if (value === undefined || value === null) return out;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidRequest("'provider' must be an object.", 'provider');
  const p = value as Record<string, unknown>;
  for (const key of Object.keys(p)) {
    if (!(PROVIDER_FIELDS as readonly string[]).includes(key)) {
      throw invalidRequest(
        `Unrecognized routing control 'provider.${key}'; supported: ${PROVIDER_FIELDS.join(', ')}.`,
        `provider.${key}`,
      );
    }
  }
  const order = providerList(p.order, 'order');
  if (order) out.order = order;
  const only = providerList(p.only, 'only');
  if (only) out.only = only;
  const ignore = providerList(p.ignore, 'ignore');
  if (ignore) out.ignore = ignore;
  const allowFallbacks = bool(p.allow_fallbacks, 'allow_fallbacks');
  if (allowFallbacks !== undefined) out.allowFallbacks = allowFallbacks;
  const sort = oneOf(p.sort, 'sort', SORTS);
  if (sort) out.sort = sort;
  if (bool(p.zdr, 'zdr') === true) {
    out.zdr = true;
    out.policySource.zdr = 'request';
  }
  if (oneOf(p.data_collection, 'data_collection', DATA_COLLECTION) === 'deny') {
    out.dataCollection = 'deny';
    out.policySource.dataCollection = 'request';
  }
  const maxPrice = parseMaxPrice(p.max_price);
  if (maxPrice) out.maxPrice = maxPrice;
  return out;
}

function providerList(v: unknown, name: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  const path = `provider.${name}`;
  if (!Array.isArray(v)) throw invalidRequest(`'${path}' must be an array of provider ids.`, path);
  if (v.length > MAX_PROVIDER_LIST) throw invalidRequest(`'${path}' may list at most ${MAX_PROVIDER_LIST} providers.`, path);
  const out: string[] = [];
  v.forEach((item: unknown, i) => {
    if (typeof item !== 'string' || !item) throw invalidRequest(`'${path}[${i}]' must be a non-empty string.`, `${path}[${i}]`);
    if (!out.includes(item)) out.push(item);
  });
  return out;
}

function bool(v: unknown, name: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidRequest(`'provider.${name}' must be a boolean.`, `provider.${name}`);
  return v;
}

function oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[]): T | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalidRequest(`'provider.${name}' must be one of ${allowed.map((a) => `'${a}'`).join(', ')}.`, `provider.${name}`);
  }
  return v as T;
}

const DECIMAL = /^\d+(\.\d+)?$/;

function parseMaxPrice(v: unknown): MaxPrice | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidRequest("'provider.max_price' must be an object.", 'provider.max_price');
  const obj = v as Record<string, unknown>;
  const out: MaxPrice = {};
  for (const key of Object.keys(obj)) {
    const path = `provider.max_price.${key}`;
    if (!(MAX_PRICE_FIELDS as readonly string[]).includes(key)) {
      throw invalidRequest(`Unrecognized routing control '${path}'; supported: ${MAX_PRICE_FIELDS.join(', ')}.`, path);
    }
    const raw = obj[key];
    if (raw === undefined || raw === null) continue;
    // OpenRouter's SDKs send prices as decimal strings; both forms are read.
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && DECIMAL.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < 0) {
      throw invalidRequest(`'${path}' must be a number >= 0 (USD${key === 'request' ? ' per request' : ' per million tokens'}).`, path);
    }
    out[key as keyof MaxPrice] = n;
  }
  return out;
}
