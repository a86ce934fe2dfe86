/**
 * IR chat request → Anthropic Messages API request body. Pure; never mutates its input.
 * @see https://docs.anthropic.com/en/api/messages
 */
import { emptyConversation, invalidRequest, unsupportedParameter } from '../../ir/errors.js';
import { refusesSampling, takesXhighEffort, thinkingStyle, type ThinkingStyle } from './thinking-style.js';
import type {
  IRAssistantMessage,
  IRChatRequest,
  IRMessage,
  IRReasoningEffort,
  IRRequestContext,
  IRTool,
  IRToolChoice,
  IRUserContentPart,
  IRWarning,
} from '../../ir/request.js';

const PROVIDER = 'anthropic';

/** `max_tokens` when neither the client nor the catalog gives one. */
export const DEFAULT_MAX_TOKENS = 4096;

/** The instruction added for `response_format: {type: 'json_object'}` (Anthropic has no JSON mode). */
export const JSON_OBJECT_INSTRUCTION = 'Respond with a single JSON object.';

/** Anthropic's highest temperature (OpenAI's is 2). */
const MAX_TEMPERATURE = 1;

/**
 * Thinking budget for each OpenAI `reasoning_effort`. Anthropic's minimum budget is 1024.
 * @see https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking
 */
export const THINKING_BUDGETS: Readonly<Record<Exclude<IRReasoningEffort, 'none'>, number>> = {
  minimal: 1024,
  low: 2048,
  medium: 8192,
  high: 24576,
  xhigh: 32000,
};

/** Smallest `budget_tokens` Anthropic accepts. */
const MIN_THINKING_BUDGET = 1024;

/** With thinking on, Anthropic only accepts `top_p` in [0.95, 1]. */
const MIN_TOP_P_WITH_THINKING = 0.95;

// ---------------------------------------------------------------------------------------------
// Wire types (the subset of the Messages API request this adapter writes)
// ---------------------------------------------------------------------------------------------

/** @see https://docs.anthropic.com/en/api/messages#body-messages-content */
export type AnthropicTextBlock = { type: 'text'; text: string };
export type AnthropicImageBlock = {
  type: 'image';
  source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string };
};
export type AnthropicToolUseBlock = { type: 'tool_use'; id: string; name: string; input: unknown };
export type AnthropicToolResultBlock = { type: 'tool_result'; tool_use_id: string; content?: string };
export type AnthropicContentBlock =
  | AnthropicTextBlock
  | AnthropicImageBlock
  | AnthropicToolUseBlock
  | AnthropicToolResultBlock;

export interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: AnthropicContentBlock[];
}

/** @see https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use */
export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Record<string, unknown>;
  strict?: boolean;
}

/** @see https://docs.anthropic.com/en/api/messages#body-tool-choice */
export type AnthropicToolChoice =
  | { type: 'auto'; disable_parallel_tool_use?: boolean }
  | { type: 'any'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean }
  | { type: 'none' };

/** @see https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking */
export type AnthropicThinking = { type: 'enabled'; budget_tokens: number } | { type: 'adaptive' } | { type: 'disabled' };
export type AnthropicEffort = 'low' | 'medium' | 'high' | 'xhigh';

/** @see https://docs.anthropic.com/en/api/messages */
export interface AnthropicRequestBody {
  model: string;
  messages: AnthropicMessage[];
  max_tokens: number;
  system?: AnthropicTextBlock[];
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  stream?: true;
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
  thinking?: AnthropicThinking;
  metadata?: { user_id: string };
  /**
   * @see https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs
   * @see https://platform.claude.com/docs/en/build-with-claude/effort
   */
  output_config?: { format?: { type: 'json_schema'; schema: Record<string, unknown> }; effort?: AnthropicEffort };
}

export interface ConvertedRequest {
  body: AnthropicRequestBody;
  warnings: IRWarning[];
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/**
 * Converts an IR chat request to an Anthropic Messages body. Throws a 400 `GatewayError` for
 * parameters whose loss would change the answer (`n > 1`, `logprobs`, `logit_bias`, forced tool
 * use together with thinking); returns warnings for the ones that can be dropped or adapted.
 * @see https://docs.anthropic.com/en/api/messages
 */
export function convertRequest(req: IRChatRequest, ctx: IRRequestContext): ConvertedRequest {
  rejectUnsupported(req);
  const warnings: IRWarning[] = [];

  const system = convertSystem(req.messages, warnings);
  const clientSystemBlocks = system.length;
  if (req.responseFormat?.type === 'json_object') {
    system.push({ type: 'text', text: JSON_OBJECT_INSTRUCTION });
    warnings.push({
      param: 'response_format',
      message: `Anthropic has no JSON mode; the instruction "${JSON_OBJECT_INSTRUCTION}" was added to the system prompt instead.`,
    });
  }

  const style = thinkingStyle(req.model);
  const adaptive = style === 'budget' ? {} : adaptiveThinking(req, style, warnings);
  const thinkingBudget = style === 'budget' ? requestedThinkingBudget(req, warnings) : undefined;
  const tokens = planTokens(req.maxTokens, ctx.maxOutputTokens, thinkingBudget, warnings);

  const body: AnthropicRequestBody = {
    model: req.model,
    messages: convertMessages(req.messages, warnings),
    max_tokens: tokens.maxTokens,
  };
  if (body.messages.length === 0) {
    // Only system or developer messages (OpenAI answers those): Anthropic needs a conversation
    // turn, so the client's system prompt becomes the user message.
    if (clientSystemBlocks === 0) throw emptyConversation();
    body.messages = [{ role: 'user', content: system.splice(0, clientSystemBlocks) }];
    warnings.push({
      param: 'messages',
      message: 'Anthropic needs a user or assistant message; the system prompt was sent as the user message.',
    });
  }
  if (system.length > 0) body.system = system;
  if (tokens.budgetTokens !== undefined) {
    body.thinking = { type: 'enabled', budget_tokens: tokens.budgetTokens };
  } else if (adaptive.config) {
    body.thinking = adaptive.config;
  }
  const thinks = body.thinking !== undefined && body.thinking.type !== 'disabled';
  Object.assign(body, convertSampling(req, thinks, refusesSampling(req.model), warnings));
  if (req.stop && req.stop.length > 0) body.stop_sequences = [...req.stop];
  if (req.stream) body.stream = true;
  if (req.user !== undefined) body.metadata = { user_id: req.user };

  if (req.tools && req.tools.length > 0) body.tools = req.tools.map(convertTool);
  // Forcing a tool is refused with a manual budget; adaptive thinking takes it (except on some
  // 5.5-generation models, which say so themselves).
  const toolChoice = convertToolChoice(req, tokens.budgetTokens !== undefined);
  if (toolChoice) body.tool_choice = toolChoice;

  if (req.responseFormat?.type === 'json_schema') {
    body.output_config = { format: { type: 'json_schema', schema: req.responseFormat.schema } };
  }
  if (adaptive.effort) body.output_config = { ...body.output_config, effort: adaptive.effort };

  warnDropped(req, warnings);
  return { body, warnings };
}

// ---------------------------------------------------------------------------------------------
// Parameters Anthropic cannot honour
// ---------------------------------------------------------------------------------------------

/** Parameters whose loss would change the answer: a 400 rather than a silent drop. */
function rejectUnsupported(req: IRChatRequest): void {
  if (req.n !== undefined && req.n > 1) {
    throw unsupportedParameter('n', PROVIDER, 'Anthropic returns one choice per request');
  }
  if (req.logprobs) throw unsupportedParameter('logprobs', PROVIDER, 'Anthropic does not return log probabilities');
  if (req.topLogprobs !== undefined && req.topLogprobs > 0) {
    throw unsupportedParameter('top_logprobs', PROVIDER, 'Anthropic does not return log probabilities');
  }
  if (req.logitBias && Object.keys(req.logitBias).length > 0) {
    throw unsupportedParameter('logit_bias', PROVIDER, 'Anthropic has no token biasing');
  }
  // Anthropic refuses a stop sequence made only of whitespace (e.g. "\n", common with OpenAI);
  // sending the others alone would let the answer run past where the client wants it cut.
  if (req.stop?.some((s) => s.trim() === '')) {
    throw unsupportedParameter('stop', PROVIDER, 'Anthropic accepts no stop sequence made only of whitespace');
  }
}

/** Parameters that can be dropped without changing what is asked: a warning each. */
function warnDropped(req: IRChatRequest, warnings: IRWarning[]): void {
  if (req.seed !== undefined) {
    warnings.push({ param: 'seed', message: 'Anthropic does not support seeded sampling; seed was ignored.' });
  }
  if (req.frequencyPenalty) {
    warnings.push({ param: 'frequency_penalty', message: 'Anthropic has no frequency penalty; it was ignored.' });
  }
  if (req.presencePenalty) {
    warnings.push({ param: 'presence_penalty', message: 'Anthropic has no presence penalty; it was ignored.' });
  }
  if (req.metadata && Object.keys(req.metadata).length > 0) {
    warnings.push({ param: 'metadata', message: 'Anthropic accepts only a user id as metadata; metadata was ignored.' });
  }
  if (req.serviceTier !== undefined) {
    warnings.push({ param: 'service_tier', message: 'OpenAI service tiers do not apply to Anthropic; it was ignored.' });
  }
}

// ---------------------------------------------------------------------------------------------
// System prompt
// ---------------------------------------------------------------------------------------------

/**
 * All system and developer messages, in order, as top-level `system` text blocks. Anthropic has
 * no system role inside `messages`, so one appearing after the conversation started is moved to
 * the top (with a warning: its position is lost).
 * @see https://docs.anthropic.com/en/api/messages#body-system
 */
function convertSystem(messages: readonly IRMessage[], warnings: IRWarning[]): AnthropicTextBlock[] {
  const blocks: AnthropicTextBlock[] = [];
  let conversationStarted = false;
  messages.forEach((m, i) => {
    if (m.role !== 'system') {
      conversationStarted = true;
      return;
    }
    if (conversationStarted) {
      warnings.push({
        param: `messages[${i}]`,
        message: `Anthropic accepts system instructions only before the conversation; this ${m.origin} message was moved to the system prompt.`,
      });
    }
    if (m.text) blocks.push({ type: 'text', text: m.text });
  });
  return blocks;
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/**
 * Conversation messages → strictly alternating user/assistant turns. Tool results become
 * `tool_result` blocks of a user turn; consecutive same-role turns are merged into one, with
 * `tool_result` blocks first as Anthropic requires.
 * @see https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use#handling-tool-use-and-tool-result-content-blocks
 */
function convertMessages(messages: readonly IRMessage[], warnings: IRWarning[]): AnthropicMessage[] {
  const turns: AnthropicMessage[] = [];
  // The tool_use ids of the assistant turn a tool result will follow once turns are merged.
  let callIds = new Set<string>();
  const push = (turn: AnthropicMessage) => {
    // An empty message carries nothing, and Anthropic refuses empty turns: left out, so that
    // its neighbours merge as if it had not been sent.
    if (turn.content.length === 0) return;
    if (turn.role === 'assistant' && turns[turns.length - 1]?.role !== 'assistant') callIds = new Set();
    turns.push(turn);
  };
  messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
        return;
      case 'user':
        if (m.name !== undefined) {
          warnings.push({ param: `messages[${i}].name`, message: 'Anthropic has no participant names; name was ignored.' });
        }
        push({ role: 'user', content: m.content.flatMap(convertUserPart) });
        return;
      case 'assistant':
        push({ role: 'assistant', content: convertAssistant(m, i) });
        for (const call of m.toolCalls) callIds.add(call.id);
        return;
      case 'tool':
        // Anthropic takes a tool result only right after the assistant turn that made the call.
        if (!callIds.has(m.toolCallId)) {
          throw invalidRequest(
            "No tool call of the preceding assistant message has the id given in 'tool_call_id'.",
            `messages[${i}].tool_call_id`,
          );
        }
        push({ role: 'user', content: [toolResultBlock(m.toolCallId, m.content)] });
        return;
    }
  });
  return mergeSameRole(turns);
}

function convertUserPart(part: IRUserContentPart): AnthropicContentBlock[] {
  if (part.type === 'text') return part.text ? [{ type: 'text', text: part.text }] : [];
  const source =
    part.source.kind === 'base64'
      ? { type: 'base64' as const, media_type: part.source.mediaType, data: part.source.data }
      : { type: 'url' as const, url: part.source.url };
  return [{ type: 'image', source }];
}

function convertAssistant(m: IRAssistantMessage, i: number): AnthropicContentBlock[] {
  const blocks: AnthropicContentBlock[] = [];
  for (const part of m.content) if (part.text) blocks.push({ type: 'text', text: part.text });
  if (m.refusal) blocks.push({ type: 'text', text: m.refusal });
  m.toolCalls.forEach((call, j) => {
    blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: parseToolArguments(call.arguments, i, j) });
  });
  return blocks;
}

/** Tool call arguments are JSON text in the IR and a JSON object on Anthropic's wire. */
function parseToolArguments(args: string, i: number, j: number): unknown {
  const param = `messages[${i}].tool_calls[${j}].function.arguments`;
  if (args.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw invalidRequest(`${param} is not valid JSON.`, param);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidRequest(`${param} must be a JSON object.`, param);
  }
  return parsed;
}

function toolResultBlock(toolUseId: string, content: string): AnthropicToolResultBlock {
  return content ? { type: 'tool_result', tool_use_id: toolUseId, content } : { type: 'tool_result', tool_use_id: toolUseId };
}

/** Merges consecutive turns of the same role into new objects (inputs untouched). */
function mergeSameRole(turns: readonly AnthropicMessage[]): AnthropicMessage[] {
  const merged: AnthropicMessage[] = [];
  for (const turn of turns) {
    const last = merged[merged.length - 1];
    if (last && last.role === turn.role) last.content = [...last.content, ...turn.content];
    else merged.push({ role: turn.role, content: [...turn.content] });
  }
  return merged.map((t) => (t.role === 'user' ? { role: 'user', content: toolResultsFirst(t.content) } : t));
}

function toolResultsFirst(blocks: readonly AnthropicContentBlock[]): AnthropicContentBlock[] {
  return [...blocks.filter((b) => b.type === 'tool_result'), ...blocks.filter((b) => b.type !== 'tool_result')];
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/** @see https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use#specifying-client-tools */
function convertTool(tool: IRTool): AnthropicTool {
  // Anthropic requires an object schema; OpenAI allows omitting parameters entirely.
  const input_schema = tool.parameters.type === undefined ? { type: 'object', ...tool.parameters } : tool.parameters;
  const out: AnthropicTool = { name: tool.name, input_schema };
  if (tool.description !== undefined) out.description = tool.description;
  if (tool.strict) out.strict = true;
  return out;
}

/**
 * OpenAI `tool_choice` + `parallel_tool_calls` → Anthropic `tool_choice`.
 * `required` is Anthropic's `any`; `parallel_tool_calls: false` is `disable_parallel_tool_use`.
 * @see https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use#forcing-tool-use
 */
function convertToolChoice(req: IRChatRequest, thinking: boolean): AnthropicToolChoice | undefined {
  const choice: IRToolChoice = req.toolChoice ?? { type: 'auto' };
  const hasTools = (req.tools?.length ?? 0) > 0;
  const forced = choice.type === 'required' || choice.type === 'tool';
  if (!hasTools) {
    if (forced) throw invalidRequest('tool_choice requires tools.', 'tool_choice');
    return undefined;
  }
  if (forced && thinking) {
    throw unsupportedParameter(
      'tool_choice',
      PROVIDER,
      'forcing a tool call is not compatible with extended thinking (reasoning_effort)',
    );
  }
  const noParallel = req.parallelToolCalls === false ? { disable_parallel_tool_use: true } : {};
  switch (choice.type) {
    case 'none':
      return { type: 'none' };
    case 'required':
      return { type: 'any', ...noParallel };
    case 'tool':
      return { type: 'tool', name: choice.name, ...noParallel };
    case 'auto':
      return req.toolChoice || req.parallelToolCalls === false ? { type: 'auto', ...noParallel } : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling, thinking and max_tokens
// ---------------------------------------------------------------------------------------------

/**
 * temperature / top_p; Anthropic rejects temperature, and top_p below 0.95, when thinking is on,
 * and both (but for their default, 1) on the models that refuse sampling parameters.
 */
function convertSampling(
  req: IRChatRequest,
  thinking: boolean,
  noSampling: boolean,
  warnings: IRWarning[],
): Pick<AnthropicRequestBody, 'temperature' | 'top_p'> {
  const out: Pick<AnthropicRequestBody, 'temperature' | 'top_p'> = {};
  if (noSampling) {
    // Claude 4.7 and later refuse any temperature or top_p but the default (1).
    for (const [param, value] of [['temperature', req.temperature], ['top_p', req.topP]] as const) {
      if (value !== undefined && value !== 1) {
        warnings.push({ param, message: `This Claude model accepts no sampling parameters; ${param} was ignored.` });
      }
    }
    return out;
  }
  if (req.temperature !== undefined) {
    if (thinking) {
      warnings.push({ param: 'temperature', message: 'Anthropic does not accept temperature with thinking on; it was ignored.' });
    } else if (req.temperature > MAX_TEMPERATURE) {
      // OpenAI's range is 0 to 2, Anthropic's 0 to 1; Anthropic's own OpenAI-compatible API caps it too.
      out.temperature = MAX_TEMPERATURE;
      warnings.push({ param: 'temperature', message: `Anthropic accepts temperature from 0 to 1; ${req.temperature} was capped at 1.` });
    } else {
      out.temperature = req.temperature;
    }
  }
  if (req.topP !== undefined) {
    if (thinking && req.topP < MIN_TOP_P_WITH_THINKING) {
      warnings.push({ param: 'top_p', message: `Anthropic accepts top_p only from ${MIN_TOP_P_WITH_THINKING} to 1 with thinking on; it was ignored.` });
    } else {
      out.top_p = req.topP;
    }
  }
  return out;
}

/**
 * `reasoning_effort` for the models with adaptive thinking: `thinking: {type: 'adaptive'}` and
 * `output_config.effort` (minimal and low → low, medium, high, xhigh where the model has it,
 * else high); `none` turns thinking off where it can be (`disabled`), and is effort `low` on
 * the models that always think. Without `reasoning_effort` nothing is sent: the model's default.
 */
function adaptiveThinking(
  req: IRChatRequest,
  style: Exclude<ThinkingStyle, 'budget'>,
  warnings: IRWarning[],
): { config?: AnthropicThinking; effort?: AnthropicEffort } {
  const effort = req.reasoningEffort;
  if (effort === undefined) return {};
  if (effort === 'none') {
    if (style === 'adaptive') return { config: { type: 'disabled' } };
    warnings.push({
      param: 'reasoning_effort',
      message: 'This Claude model always thinks; reasoning_effort none was sent as the lowest effort (low).',
    });
    return { config: { type: 'adaptive' }, effort: 'low' };
  }
  if (effort === 'xhigh' && !takesXhighEffort(req.model)) {
    warnings.push({ param: 'reasoning_effort', message: 'This Claude model has no xhigh effort; high was used.' });
    return { config: { type: 'adaptive' }, effort: 'high' };
  }
  return { config: { type: 'adaptive' }, effort: effort === 'minimal' ? 'low' : effort };
}

/**
 * The thinking budget for the request's `reasoning_effort`, or undefined for no thinking.
 * With thinking on, Anthropic requires the last assistant turn, when it called tools, to start
 * with its signed thinking blocks (whether the tool results end the conversation or a user
 * message follows them), and the OpenAI format cannot carry them; thinking is then left off for
 * this request, with a warning.
 * @see https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking#extended-thinking-with-tool-use
 */
function requestedThinkingBudget(req: IRChatRequest, warnings: IRWarning[]): number | undefined {
  const effort = req.reasoningEffort;
  if (effort === undefined || effort === 'none') return undefined;
  if (lastAssistant(req.messages)?.toolCalls.length) {
    warnings.push({
      param: 'reasoning_effort',
      message: 'Anthropic needs the previous turn\'s signed thinking blocks to think while continuing a tool call; thinking was not enabled for this request.',
    });
    return undefined;
  }
  return THINKING_BUDGETS[effort];
}

function lastAssistant(messages: readonly IRMessage[]): IRAssistantMessage | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === 'assistant') return m;
  }
  return undefined;
}

export interface TokenPlan {
  maxTokens: number;
  budgetTokens?: number;
}

/**
 * Anthropic requires `max_tokens`, and with thinking, `budget_tokens < max_tokens` (thinking counts
 * towards max_tokens, as OpenAI's reasoning tokens count towards max_completion_tokens).
 * - no client value: the catalog's maxOutputTokens, else 4096 (warned);
 * - thinking budget ≥ max_tokens: max_tokens is raised to budget + the requested output (warned);
 * - when that exceeds the model's known maximum, max_tokens is the maximum and the budget is
 *   reduced to leave room for the answer (warned).
 */
export function planTokens(
  requested: number | undefined,
  modelMax: number | undefined,
  budget: number | undefined,
  warnings: IRWarning[],
): TokenPlan {
  let maxTokens = requested ?? modelMax ?? DEFAULT_MAX_TOKENS;
  if (requested === undefined && modelMax === undefined) {
    warnings.push({
      param: 'max_tokens',
      message: `Anthropic requires max_tokens and the model's maximum is unknown; ${DEFAULT_MAX_TOKENS} was used.`,
    });
  }
  if (budget === undefined) return { maxTokens };
  if (maxTokens > budget) return { maxTokens, budgetTokens: budget };

  const output = maxTokens;
  maxTokens = budget + output;
  if (modelMax === undefined || maxTokens <= modelMax) {
    warnings.push({
      param: 'max_tokens',
      message: `max_tokens was raised to ${maxTokens} (thinking budget ${budget} + ${output} for the answer): Anthropic counts thinking towards max_tokens.`,
    });
    return { maxTokens, budgetTokens: budget };
  }

  maxTokens = modelMax;
  const reduced = Math.max(MIN_THINKING_BUDGET, Math.min(budget, modelMax - Math.min(output, Math.floor(modelMax / 2))));
  if (reduced >= maxTokens) {
    throw unsupportedParameter('reasoning_effort', PROVIDER, `the model's maximum output (${modelMax} tokens) leaves no room for thinking`);
  }
  warnings.push({
    param: 'reasoning_effort',
    message: `The thinking budget was reduced to ${reduced} tokens and max_tokens set to the model's maximum of ${modelMax}.`,
  });
  return { maxTokens, budgetTokens: reduced };
}
