/**
 * Validates gateway output against OpenAI's published schemas (shared/specs, a subset of
 * OpenAI's OpenAPI document).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const here = dirname(fileURLToPath(import.meta.url));

function findSpec(): string {
  const candidates = [
    process.env.OPENAI_SCHEMAS_PATH,
    resolve(here, '../../../shared/specs/openai-chat-schemas.json'),
    resolve(here, '../fixtures/openai-chat-schemas.json'),
  ].filter((p): p is string => Boolean(p));
  for (const p of candidates) {
    try {
      readFileSync(p);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error('openai-chat-schemas.json not found');
}

/**
 * The document mixes OpenAPI 3.0's `nullable` into 3.1 schemas; JSON Schema 2020-12 has no such
 * keyword, so `nullable: true` becomes a `'null'` member of `type` (or is dropped where no type is given).
 */
function normaliseNullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normaliseNullable);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) if (k !== 'nullable') out[k] = normaliseNullable(v);
  const o = node as Record<string, unknown>;
  if (o.nullable === true && typeof o.type === 'string') {
    out.type = [o.type, 'null'];
    if (Array.isArray(o.enum)) out.enum = [...o.enum, null];
  }
  return out;
}

const spec = normaliseNullable(JSON.parse(readFileSync(findSpec(), 'utf8'))) as { components: unknown };
const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: 'openai', components: spec.components });

export type SchemaName =
  | 'CreateChatCompletionResponse'
  | 'CreateChatCompletionStreamResponse'
  | 'CreateEmbeddingResponse'
  | 'ListModelsResponse'
  | 'ErrorResponse';

/** Returns a list of problems ([] when valid). */
export function schemaErrors(name: SchemaName, value: unknown): string[] {
  const validate = ajv.getSchema(`openai#/components/schemas/${name}`);
  if (!validate) throw new Error(`schema ${name} not found`);
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/** Throws with the list of problems when `value` does not match the schema. */
export function assertSchema(name: SchemaName, value: unknown): void {
  const errors = schemaErrors(name, value);
  if (errors.length) throw new Error(`${name} schema violations:\n${errors.join('\n')}\n${JSON.stringify(value)}`);
}
