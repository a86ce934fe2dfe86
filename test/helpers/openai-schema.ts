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

const spec = JSON.parse(readFileSync(findSpec(), 'utf8'));
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
