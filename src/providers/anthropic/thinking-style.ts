/**
 * How a Claude model takes thinking, from the generation in its id. Anthropic changed the
 * thinking controls between generations, and each one refuses the other's with a 400:
 *
 * - `budget`: `thinking: {type: 'enabled', budget_tokens}` — Claude 4.5 and earlier (e.g.
 *   `claude-haiku-4-5-20251001`, `claude-3-7-sonnet-20250219`), which know no other form; also
 *   any id without a recognisable version, as before this distinction existed.
 * - `adaptive`: `thinking: {type: 'adaptive'}` with `output_config.effort`, off unless asked for
 *   (`thinking: {type: 'disabled'}` turns it off) — Claude 4.6 up to 5.x before 5.5. Manual
 *   budgets are deprecated on 4.6 and refused from Opus 4.7 and the Claude 5 models on.
 * - `always`: adaptive thinking that cannot be turned off or given a budget — Claude 5.5 and
 *   later, and the Fable and Mythos models.
 *
 * Separately, from Claude 4.7 on (and on Fable and Mythos) a temperature or top_p other than the
 * default is refused (`refusesSampling`).
 *
 * @see https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking
 * @see https://platform.claude.com/docs/en/build-with-claude/effort
 */
export type ThinkingStyle = 'budget' | 'adaptive' | 'always';

export interface ClaudeVersion {
  major: number;
  minor: number;
}

/**
 * The version in a Claude model id: the first number is the major version, a number right after
 * it the minor one (`claude-opus-4-6` → 4.6, `claude-3-7-sonnet-20250219` → 3.7,
 * `claude-sonnet-4-20250514` → 4.0). An 8-digit date is not a version. Undefined when the id has
 * no number.
 */
export function claudeVersion(model: string): ClaudeVersion | undefined {
  const tokens = model.toLowerCase().split(/[^a-z0-9]+/);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!/^\d{1,2}$/.test(t)) continue;
    const next = tokens[i + 1];
    return { major: Number(t), minor: next !== undefined && /^\d{1,2}$/.test(next) ? Number(next) : 0 };
  }
  return undefined;
}

/** The model's generation as major × 100 + minor (4.7 → 407); Fable and Mythos count as newest. */
function generation(model: string): number | undefined {
  if (/(^|[^a-z])(fable|mythos)([^a-z]|$)/i.test(model)) return Infinity;
  const v = claudeVersion(model);
  return v === undefined ? undefined : v.major * 100 + v.minor;
}

/** Generations where Anthropic's controls changed: adaptive thinking, sampling and xhigh, always-on thinking. */
const ADAPTIVE_FROM = 406;
const NO_SAMPLING_FROM = 407;
const ALWAYS_FROM = 505;

export function thinkingStyle(model: string): ThinkingStyle {
  const n = generation(model);
  if (n === undefined || n < ADAPTIVE_FROM) return 'budget';
  return n >= ALWAYS_FROM ? 'always' : 'adaptive';
}

/** Whether the model takes `output_config.effort: 'xhigh'` (Claude 4.7 and later, like `refusesSampling`). */
export function takesXhighEffort(model: string): boolean {
  return refusesSampling(model);
}

/** Whether the model refuses a temperature or top_p other than the default (Claude 4.7 and later). */
export function refusesSampling(model: string): boolean {
  return (generation(model) ?? 0) >= NO_SAMPLING_FROM;
}
