/**
 * Upstream targets and credentials come only from the operator's config. Fields that other
 * gateways accept to redirect a call (`api_base`, `base_url`, `api_key`, …) are refused with 400
 * wherever they appear in a request — top level, or nested in an object such as `extra_body` or
 * `metadata` — before any upstream connection is made. Not searched: the places where such names
 * are legitimate data (message contents and tool/function/response JSON schemas), which are
 * never read as settings by this gateway.
 */
import { invalidRequest } from '../../ir/errors.js';

/** Lower-cased names refused anywhere they are looked for (see the module comment). */
export const UPSTREAM_OVERRIDE_FIELDS: ReadonlySet<string> = new Set([
  'api_base',
  'base_url',
  'baseurl',
  'api_url',
  'api_key',
  'apikey',
  'api_version',
  'azure_endpoint',
  'azure_ad_token',
  'custom_llm_provider',
  'aws_access_key_id',
  'aws_secret_access_key',
  'aws_region_name',
  'vertex_project',
  'vertex_location',
  'vertex_credentials',
]);

/** Top-level fields whose contents are data, not settings. */
const DATA_FIELDS: ReadonlySet<string> = new Set(['messages', 'tools', 'functions', 'response_format', 'input', 'prediction']);

const MAX_DEPTH = 8;

/** Throws a 400 naming the first upstream-override field found (as `param`, a dotted path). */
export function refuseUpstreamOverrides(body: Record<string, unknown>): void {
  for (const key in body) {
    if (UPSTREAM_OVERRIDE_FIELDS.has(key.toLowerCase())) refuse(key);
    if (DATA_FIELDS.has(key)) continue;
    const v = body[key];
    if (typeof v === 'object' && v !== null) walk(v, key, 1);
  }
}

function walk(v: object, path: string, depth: number): void {
  if (depth > MAX_DEPTH) return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      if (typeof item === 'object' && item !== null) walk(item, `${path}[${i}]`, depth + 1);
    }
    return;
  }
  for (const key in v) {
    const p = `${path}.${key}`;
    if (UPSTREAM_OVERRIDE_FIELDS.has(key.toLowerCase())) refuse(p);
    const child = (v as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null) walk(child, p, depth + 1);
  }
}

function refuse(param: string): never {
  throw invalidRequest(
    `'${param}' is not accepted: upstream endpoints and credentials are set by the gateway's operator, never by a request.`,
    param,
  );
}
