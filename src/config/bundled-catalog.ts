/**
 * The bundled model catalog: used when MaxRouter starts without a config file. Providers are
 * enabled from OPENAI_API_KEY, ANTHROPIC_API_KEY and GEMINI_API_KEY; only the models of enabled
 * providers are served.
 *
 * Prices are USD per million tokens, as published by each provider (standard / on-demand tier):
 * `input`, `output`, `cachedInput` (cache read / cache hit), `cacheWrite` (Anthropic: 5-minute
 * cache write; OpenAI GPT-6.x: its published "Cache writes" price) and `cacheWrite1h`
 * (Anthropic's 1-hour cache write). Every chat model carries `cachedInput`. `cacheWrite` is left
 * out where the provider charges cache writes as ordinary input (older OpenAI models' automatic
 * caching; Gemini's implicit caching — explicit context caching's hourly storage fee is not a
 * per-request price), so it defaults to `input`, which is what those writes cost. Reasoning
 * tokens are billed as output by all three providers, so `reasoning` is left to default to
 * `output`. Where a provider prices by prompt length, the catalog carries the base
 * (short-prompt) tier and says so next to the model. Optional prices a source did not state are
 * left out rather than guessed.
 *
 * Every number below was read from the source named in its provider block on 2026-11-30.
 * Models already shut down on the provider's own API, or shutting down on or before 2026-12-01,
 * are not listed; see docs/models.md for the list and the reasons. Refresh this file (and
 * docs/models.md) when prices or the line-ups change: the provider's page always wins.
 */
import type { z } from 'zod';
import type { modelSchema } from './schema.js';

/** A model entry as written in a config file (defaults not yet applied). */
export type ModelConfigInput = z.input<typeof modelSchema>;

/** The provider ids (and types) the bundled catalog uses. */
export type BundledProviderId = 'openai' | 'anthropic' | 'gemini';

export interface BundledProvider {
  id: BundledProviderId;
  type: BundledProviderId;
  apiKey: string;
}

/** Which environment variable enables which provider, in catalog order. */
export const BUNDLED_PROVIDER_ENV: ReadonlyArray<{ id: BundledProviderId; env: string }> = [
  { id: 'openai', env: 'OPENAI_API_KEY' },
  { id: 'anthropic', env: 'ANTHROPIC_API_KEY' },
  { id: 'gemini', env: 'GEMINI_API_KEY' },
];

// ─────────────────────────────────────────────────────────────────────────────────────────────
// OpenAI — provider `openai`. Read 2026-11-30.
// Sources:
//   https://developers.openai.com/api/docs/models/gpt-6.2-sol
//   https://developers.openai.com/api/docs/models/gpt-6-astra
//     (figures as shown on https://developers.openai.com/api/docs/models/compare; the same
//      $10 / $1 / $12.50 / $50 card is quoted for gpt-6-astra in LiteLLM's launch note,
//      https://github.com/BerriAI/litellm/discussions/39633)
//   https://developers.openai.com/ja-JP/api/docs/models/gpt-6-luna
//   https://developers.openai.com/ko-KR/api/docs/models/gpt-5-mini
//   https://developers.openai.com/api/docs/models/gpt-5-nano.md
//   https://developers.openai.com/api/docs/models/gpt-5-codex (its price comparison lists GPT-5 at
//     $1.25 input; GPT-5 $10 output from https://docs.rs/crate/openai-cost/latest/source/src/pricing.rs,
//     400,000 / 128,000 limits from https://vercel.com/ai-gateway/models/gpt-5/faq and
//     https://metacpan.org/pod/App::Greple::xlate::gpt5)
//   https://developers.openai.com/api/docs/models/text-embedding-3-large (lists -large $0.13 and
//     -small $0.02)
//   https://developers.openai.com/api/docs/deprecations (shutdown dates)
//   Legacy models, whose official pages were not retrievable here, from secondary sources that
//   cite OpenAI's pricing page:
//     gpt-4.1:      https://github.com/github/docs (data/tables/copilot/models-and-pricing.yml, an
//                   earlier revision: $2.00 / $0.50 cached / $8.00) and
//                   https://vercel.com/ai-gateway/models/gpt-4.1/providers (OpenAI: $2 / $8, read $0.5)
//     gpt-4.1-mini: https://vercel.com/ai-gateway/models/gpt-4.1-mini/api ($0.40 / $1.60, read $0.10)
//     gpt-4.1 family limits (1,047,576 / 32,768): https://developers.openai.com/ko-KR/api/docs/models/gpt-4.1-nano
//                   and https://vercel.com/ai-gateway/models/gpt-4.1-fast.md
//     gpt-5 cached input ($0.125, 90% off input as on every GPT-5 model):
//                   https://aipromptshub.co/model/gpt-5 ("verified against OpenAI docs") and
//                   https://crazyrouter.com/en/blog/gpt-5-pricing; the same $1.25 / $0.125 / $10
//                   card is on OpenAI's gpt-5-codex page above
//     gpt-4o, gpt-4o-mini: https://chatgptpricing-akr.pages.dev/api-pricing (citing
//                   developers.openai.com/api/docs/pricing) and
//                   https://github.com/CommitBrief/commitbrief/wiki/Provider-OpenAI;
//                   limits (128,000 / 16,384) from https://vercel.com/ai-gateway/models/gpt-4o-fast.md
//                   and https://vercel.com/ai-gateway/models/gpt-4o-mini-fast.md
//     o3:           https://deploybase.ai/articles/openai-pricing ($2 / $8, 200K / 100K, "data from
//                   OpenAI pricing page") and https://vercel.com/ai-gateway/models/o3-fast.md
//                   (200,000 / 100,000); cached input $0.50 from https://modelpedia.dev/openai/o3
//                   (OpenAI's price card: $2 / $0.5 cached / $8) and https://codeswap.net/models/o3/
// GPT-6.x: prompts over 272K input tokens cost 2x input/cache and 1.5x output for the whole
// request; the catalog carries the ≤272K tier. The GPT-6.2 Sol cache-write price is for the
// default 30-minute retention.
// Not listed: gpt-4.1-nano and o4-mini (shut down 2026-10-23).
// ─────────────────────────────────────────────────────────────────────────────────────────────
const OPENAI_MODELS: ModelConfigInput[] = [
  {
    id: 'openai/gpt-6.2-sol',
    name: 'GPT-6.2 Sol',
    contextLength: 1_050_000,
    maxOutputTokens: 128_000,
    endpoints: [
      { provider: 'openai', model: 'gpt-6.2-sol', pricing: { input: 2, cachedInput: 0.1, cacheWrite: 2.5, output: 10 } },
    ],
  },
  {
    id: 'openai/gpt-6-astra',
    name: 'GPT-6 Astra',
    contextLength: 1_050_000,
    maxOutputTokens: 128_000,
    endpoints: [
      { provider: 'openai', model: 'gpt-6-astra', pricing: { input: 10, cachedInput: 1, cacheWrite: 12.5, output: 50 } },
    ],
  },
  {
    id: 'openai/gpt-6-luna',
    name: 'GPT-6 Luna',
    contextLength: 1_050_000,
    maxOutputTokens: 128_000,
    endpoints: [
      { provider: 'openai', model: 'gpt-6-luna', pricing: { input: 0.1, cachedInput: 0.01, cacheWrite: 0.125, output: 0.5 } },
    ],
  },
  // Deprecated: shuts down 2026-12-11 (replacement per OpenAI: GPT-6.x Sol).
  {
    id: 'openai/gpt-5',
    name: 'GPT-5 (deprecated, shuts down 2026-12-11)',
    contextLength: 400_000,
    maxOutputTokens: 128_000,
    endpoints: [{ provider: 'openai', model: 'gpt-5', pricing: { input: 1.25, cachedInput: 0.125, output: 10 } }],
  },
  // Deprecated: shuts down 2026-12-11.
  {
    id: 'openai/gpt-5-mini',
    name: 'GPT-5 mini (deprecated, shuts down 2026-12-11)',
    contextLength: 400_000,
    maxOutputTokens: 128_000,
    endpoints: [{ provider: 'openai', model: 'gpt-5-mini', pricing: { input: 0.25, cachedInput: 0.025, output: 2 } }],
  },
  // Deprecated: shuts down 2026-12-11. 400,000 window, of which at most 272,000 input.
  {
    id: 'openai/gpt-5-nano',
    name: 'GPT-5 nano (deprecated, shuts down 2026-12-11)',
    contextLength: 400_000,
    maxOutputTokens: 128_000,
    endpoints: [{ provider: 'openai', model: 'gpt-5-nano', pricing: { input: 0.05, cachedInput: 0.005, output: 0.4 } }],
  },
  // Deprecated: shuts down 2026-12-11.
  {
    id: 'openai/o3',
    name: 'o3 (deprecated, shuts down 2026-12-11)',
    contextLength: 200_000,
    maxOutputTokens: 100_000,
    endpoints: [{ provider: 'openai', model: 'o3', pricing: { input: 2, cachedInput: 0.5, output: 8 } }],
  },
  // Deprecated: shuts down 2027-01-14 (replacement per OpenAI: GPT-6 Luna / GPT-6.1 Sol).
  {
    id: 'openai/gpt-4.1',
    name: 'GPT-4.1 (deprecated, shuts down 2027-01-14)',
    contextLength: 1_047_576,
    maxOutputTokens: 32_768,
    endpoints: [{ provider: 'openai', model: 'gpt-4.1', pricing: { input: 2, cachedInput: 0.5, output: 8 } }],
  },
  {
    id: 'openai/gpt-4.1-mini',
    name: 'GPT-4.1 mini (deprecated, shuts down 2027-01-14)',
    contextLength: 1_047_576,
    maxOutputTokens: 32_768,
    endpoints: [{ provider: 'openai', model: 'gpt-4.1-mini', pricing: { input: 0.4, cachedInput: 0.1, output: 1.6 } }],
  },
  {
    id: 'openai/gpt-4o',
    name: 'GPT-4o (deprecated, shuts down 2027-01-14)',
    contextLength: 128_000,
    maxOutputTokens: 16_384,
    endpoints: [{ provider: 'openai', model: 'gpt-4o', pricing: { input: 2.5, cachedInput: 1.25, output: 10 } }],
  },
  {
    id: 'openai/gpt-4o-mini',
    name: 'GPT-4o mini (deprecated, shuts down 2027-01-14)',
    contextLength: 128_000,
    maxOutputTokens: 16_384,
    endpoints: [{ provider: 'openai', model: 'gpt-4o-mini', pricing: { input: 0.15, cachedInput: 0.075, output: 0.6 } }],
  },
  {
    id: 'openai/text-embedding-3-small',
    name: 'text-embedding-3-small',
    kind: 'embedding',
    endpoints: [{ provider: 'openai', model: 'text-embedding-3-small', pricing: { input: 0.02, output: 0 } }],
  },
  {
    id: 'openai/text-embedding-3-large',
    name: 'text-embedding-3-large',
    kind: 'embedding',
    endpoints: [{ provider: 'openai', model: 'text-embedding-3-large', pricing: { input: 0.13, output: 0 } }],
  },
];

// ─────────────────────────────────────────────────────────────────────────────────────────────
// Anthropic — provider `anthropic`. Read 2026-11-30. `cacheWrite` is the 5-minute cache write,
// `cacheWrite1h` the 1-hour cache write (2× input on every current model; 5-minute writes are
// 1.25× input). Cache reads are 0.1× input except where Anthropic cut them further (Opus 5.5 and
// Sonnet 5.5: 0.05×), as the sources below show.
// Sources:
//   https://platform.claude.com/docs/en/about-claude/pricing (model pricing table)
//   https://platform.claude.com/docs/zh-CN/about-claude/pricing (Haiku 4.5 row: $1 / $1.25 5m
//     write / $0.10 hit / $5)
//   https://platform.claude.com/docs/models/opus-5/overview (current line-up: Opus 5.5 $4 / $20,
//     Sonnet 5.5 $2 / $10, Haiku 5.5 from $0.10 / $0.50, all 1M context / 128K max output;
//     Haiku 4.5 200K / 64K)
//   https://platform.claude.com/docs/en/models/haiku-5-5/overview.md (ID claude-haiku-5-5,
//     1M / 128K, from $0.10 / $0.50)
//   https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview (5m write $2.50, 1h write $4)
//   https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview (5m write $5, 1h write $8,
//     cache read $0.20)
//   https://platform.claude.com/docs/zh-CN/models/haiku-4-5/overview.md (ID
//     claude-haiku-4-5-20251001, legacy, 200K / 64K, $1 / $5)
//   Cache prices of the 5.5 models, from trackers that re-read the pricing page:
//     https://github.com/kurofune/claudit/releases/tag/v1.8.2 (Opus 5.5: 5m write $5, hit $0.20)
//     https://github.com/kurofune/claudit/releases/tag/v1.9.2 (Sonnet 5.5 cache hit cut from
//       $0.20 to $0.10 on 2026-10-07 — the official model page snapshot still shows $0.20;
//       Haiku 5.5 ≤100K-prompt tier: 5m / 1h write $0.125 / $0.20, hit $0.01)
//     https://github.com/TheKrush/PromptFuel/releases/tag/v1.0.23 (Haiku 5.5: 1h write $0.20)
//   Haiku 4.5 1h write $2 (Anthropic's 2× input rule; the same row in
//     https://docs.electronhub.ai/guides/prompt-caching and
//     https://claudecodeguides.com/claude-prompt-caching-pricing-and-cost-savings/)
//     https://apidog.com/blog/how-to-use-claude-haiku-5-5-api/ (Haiku 5.5: $0.01 cache reads ≤100K)
// Claude Haiku 5.5 is priced by prompt length: the catalog carries the ≤100K-token tier
// ($0.10 / $0.50); prompts over 100K cost $0.50 / $2.50 (cache write $0.625, 1h write $1.00,
// hit $0.05).
// Not listed: claude-sonnet-4-5 (retires 2026-11-30 on Anthropic's API, replacement
// claude-sonnet-5-5, per https://dev.to/leighefford/retiring-ai-models-a-pre-flight-checklist-first-openai-batch-goes-23-oct-5dc9),
// claude-opus-4-1 (marked "retired, except on Bedrock and Google Cloud" on the pricing page;
// newest Opus is listed instead), claude-3-5-haiku (not among the current models).
// ─────────────────────────────────────────────────────────────────────────────────────────────
const ANTHROPIC_MODELS: ModelConfigInput[] = [
  {
    id: 'anthropic/claude-opus-5-5',
    name: 'Claude Opus 5.5',
    contextLength: 1_000_000,
    maxOutputTokens: 128_000,
    endpoints: [
      { provider: 'anthropic', model: 'claude-opus-5-5', pricing: { input: 4, cachedInput: 0.2, cacheWrite: 5, cacheWrite1h: 8, output: 20 } },
    ],
  },
  {
    id: 'anthropic/claude-sonnet-5-5',
    name: 'Claude Sonnet 5.5',
    contextLength: 1_000_000,
    maxOutputTokens: 128_000,
    endpoints: [
      { provider: 'anthropic', model: 'claude-sonnet-5-5', pricing: { input: 2, cachedInput: 0.1, cacheWrite: 2.5, cacheWrite1h: 4, output: 10 } },
    ],
  },
  // Base tier (prompts ≤100K tokens); see the block comment.
  {
    id: 'anthropic/claude-haiku-5-5',
    name: 'Claude Haiku 5.5',
    contextLength: 1_000_000,
    maxOutputTokens: 128_000,
    endpoints: [
      { provider: 'anthropic', model: 'claude-haiku-5-5', pricing: { input: 0.1, cachedInput: 0.01, cacheWrite: 0.125, cacheWrite1h: 0.2, output: 0.5 } },
    ],
  },
  // Legacy (still available; Anthropic suggests migrating to Claude Haiku 5.5).
  {
    id: 'anthropic/claude-haiku-4-5',
    name: 'Claude Haiku 4.5 (legacy)',
    contextLength: 200_000,
    maxOutputTokens: 64_000,
    endpoints: [
      { provider: 'anthropic', model: 'claude-haiku-4-5-20251001', pricing: { input: 1, cachedInput: 0.1, cacheWrite: 1.25, cacheWrite1h: 2, output: 5 } },
    ],
  },
];

// ─────────────────────────────────────────────────────────────────────────────────────────────
// Google Gemini API — provider `gemini`. Read 2026-11-30.
// Sources:
//   https://ai.google.dev/gemini-api/docs/pricing, as transcribed verbatim on 2026-10-07 in
//     https://github.com/api-evangelist/deepmind (plans/deepmind-plans-pricing.yml):
//     3.8 Flash $0.75 / $3.75 through 2026-12-31, $1.50 / $7.50 from 2027-01-01;
//     3.5 Flash-Lite $0.30 / $2.50; 3.1 Pro Preview $2.00 / $12.00 (prompts ≤200K;
//     $4.00 / $18.00 above); 2.5 Flash-Lite output $0.40
//   https://ai.google.dev/gemini-api/docs/models/gemini-3.1-pro-preview.md.txt (1,048,576 / 65,536)
//   https://docs.apiyi.com/en/live/2026-09/gemini-3-8-flash-official-specs.md (quotes the
//     official gemini-3.8-flash page: 1,048,576 / 65,536)
//   https://github.com/BerriAI/litellm/discussions/39357 (3.8 Flash cache reads $0.075)
//   https://docs.apiyi.com/ja/models/gemini-3-5-flash-lite.md (a reseller quoting Google's list
//     price: 3.5 Flash-Lite 1,048,576 / 65,536, cached input $0.03)
//   https://github.com/github/docs (data/tables/copilot/models-and-pricing.yml: Gemini 3.1 Pro
//     ≤200K cached input $0.20)
//   https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/gemini/2-5-flash-lite
//     (1,048,576 / 65,536); 2.5 Flash-Lite input $0.10 from
//     https://openrouter.ai/google/gemini-2.5-flash-lite/providers ($0.10 / $0.40); cache reads
//     $0.01 (text / image / video) from https://openrouter.ai/google/gemini-2.5-flash-lite:nitro
//     (its Google endpoint: $0.10 / $0.40, cache read $0.010)
//   https://developers.googleblog.com/en/gemini-embedding-available-gemini-api/ (gemini-embedding-001
//     $0.15 per 1M input tokens, 2,048 max input tokens; quoted in
//     https://github.com/simonw/llm-gemini/issues/102)
//   Shutdowns: https://dev.to/aideprecations/what-to-do-before-gemini-25-pro-and-25-flash-are-retired-on-december-1-2026-5gg9
//     (quoting https://ai.google.dev/gemini-api/docs/deprecations, read there 2026-11-10)
// Gemini 3.1 Pro Preview is tier-priced by prompt length: the catalog carries the ≤200K tier.
// Gemini 3.8 Flash carries its promotional price valid until 2026-12-31: update on 2027-01-01.
// Not listed: gemini-2.5-pro (shuts down 2026-12-01; replacement gemini-3.8-flash) and
// gemini-2.5-flash (shuts down 2026-12-01; replacement gemini-3.5-flash-lite).
// ─────────────────────────────────────────────────────────────────────────────────────────────
const GEMINI_MODELS: ModelConfigInput[] = [
  // Preview model; prompts >200K tokens cost $4 / $18.
  {
    id: 'google/gemini-3.1-pro-preview',
    name: 'Gemini 3.1 Pro Preview',
    contextLength: 1_048_576,
    maxOutputTokens: 65_536,
    endpoints: [
      { provider: 'gemini', model: 'gemini-3.1-pro-preview', pricing: { input: 2, cachedInput: 0.2, output: 12 } },
    ],
  },
  // Price through 2026-12-31; from 2027-01-01 $1.50 input / $7.50 output.
  {
    id: 'google/gemini-3.8-flash',
    name: 'Gemini 3.8 Flash',
    contextLength: 1_048_576,
    maxOutputTokens: 65_536,
    endpoints: [
      { provider: 'gemini', model: 'gemini-3.8-flash', pricing: { input: 0.75, cachedInput: 0.075, output: 3.75 } },
    ],
  },
  {
    id: 'google/gemini-3.5-flash-lite',
    name: 'Gemini 3.5 Flash-Lite',
    contextLength: 1_048_576,
    maxOutputTokens: 65_536,
    endpoints: [
      { provider: 'gemini', model: 'gemini-3.5-flash-lite', pricing: { input: 0.3, cachedInput: 0.03, output: 2.5 } },
    ],
  },
  {
    id: 'google/gemini-2.5-flash-lite',
    name: 'Gemini 2.5 Flash-Lite',
    contextLength: 1_048_576,
    maxOutputTokens: 65_536,
    endpoints: [
      { provider: 'gemini', model: 'gemini-2.5-flash-lite', pricing: { input: 0.1, cachedInput: 0.01, output: 0.4 } },
    ],
  },
  {
    id: 'google/gemini-embedding-001',
    name: 'Gemini Embedding 001',
    kind: 'embedding',
    contextLength: 2_048,
    endpoints: [{ provider: 'gemini', model: 'gemini-embedding-001', pricing: { input: 0.15, output: 0 } }],
  },
];

/** Every bundled model, in provider order (OpenAI, Anthropic, Google). */
export const BUNDLED_MODELS: ModelConfigInput[] = [...OPENAI_MODELS, ...ANTHROPIC_MODELS, ...GEMINI_MODELS];

/**
 * One provider per API-key variable that is set and not blank (id = type = `openai`,
 * `anthropic` or `gemini`; base URLs default in the schema). Surrounding whitespace of the key
 * is dropped.
 */
export function bundledProviders(env: NodeJS.ProcessEnv): BundledProvider[] {
  const out: BundledProvider[] = [];
  for (const { id, env: name } of BUNDLED_PROVIDER_ENV) {
    const key = env[name]?.trim();
    if (key) out.push({ id, type: id, apiKey: key });
  }
  return out;
}

/**
 * The bundled models served by the given providers: endpoints of other providers are dropped,
 * and a model left without endpoints is dropped. Returns copies, never the shared entries.
 */
export function bundledModelsFor(providerIds: Set<string>): ModelConfigInput[] {
  const out: ModelConfigInput[] = [];
  for (const model of BUNDLED_MODELS) {
    const endpoints = model.endpoints.filter((e) => providerIds.has(e.provider));
    if (endpoints.length === 0) continue;
    out.push(structuredClone({ ...model, endpoints }));
  }
  return out;
}
