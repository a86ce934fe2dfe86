/**
 * OpenAI Chat Completions request → IR. Every rejection names the field at fault (OpenAI's
 * `param`), so a client sees `400 messages[2].content: ...` rather than a generic failure.
 * Used when the upstream speaks another dialect; same-dialect requests are passed through.
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import { invalidRequest, unsupportedParameter } from '../../ir/errors.js';
import type {
  IRAssistantMessage,
  IRChatRequest,
  IRImagePart,
  IRMessage,
  IRReasoningEffort,
  IRResponseFormat,
  IRTextPart,
  IRTool,
  IRToolChoice,
  IRUserContentPart,
  IRWarning,
} from '../../ir/request.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Top-level fields this decoder translates. */
const TRANSLATED = new Set([
  'model', 'messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p',
  'stop', 'seed', 'user', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'reasoning_effort',
  'frequency_penalty', 'presence_penalty', 'n', 'logprobs', 'top_logprobs', 'logit_bias', 'metadata', 'service_tier',
]);

/** OpenAI fields with no effect on the output's meaning: ignored for other providers, with a warning. */
const IGNORED_WITH_WARNING: Record<string, string> = {
  store: 'stored completions exist only at OpenAI',
  prompt_cache_key: 'prompt caching keys exist only at OpenAI',
  prompt_cache_retention: 'prompt caching options exist only at OpenAI',
  safety_identifier: 'safety identifiers exist only at OpenAI',
  prediction: 'predicted outputs exist only at OpenAI (an optimisation; the output is unchanged)',
  verbosity: 'verbosity exists only at OpenAI',
};

/** OpenAI fields whose loss would change the output: refused with 400 for other providers. */
const REFUSED: Record<string, string> = {
  functions: 'deprecated; use tools',
  function_call: 'deprecated; use tool_choice',
  audio: 'audio output is available only from OpenAI models',
  modalities: 'output modalities other than text are available only from OpenAI models',
  web_search_options: 'web search is available only from OpenAI models',
};

function num(body: Obj, key: string, min: number, max: number, int = false): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v))) {
    throw invalidRequest(`'${key}' must be ${int ? 'an integer' : 'a number'}.`, key);
  }
  if (v < min || v > max) throw invalidRequest(`'${key}' must be between ${min} and ${max}; got ${v}.`, key);
  return v;
}

function bool(body: Obj, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidRequest(`'${key}' must be a boolean.`, key);
  return v;
}

function str(v: unknown, param: string, required = true): string | undefined {
  if (v === undefined || v === null) {
    if (required) throw invalidRequest(`'${param}' is required.`, param);
    return undefined;
  }
  if (typeof v !== 'string') throw invalidRequest(`'${param}' must be a string.`, param);
  return v;
}

function textOfParts(content: unknown, param: string, allowRefusal = false): { text: IRTextPart[]; refusal?: string } {
  if (typeof content === 'string') return { text: [{ type: 'text', text: content }] };
  if (!Array.isArray(content)) throw invalidRequest(`'${param}' must be a string or an array of content parts.`, param);
  const text: IRTextPart[] = [];
  let refusal: string | undefined;
  content.forEach((part, i) => {
    const p = `${param}[${i}]`;
    if (!isObj(part)) throw invalidRequest(`'${p}' must be an object.`, p);
    if (part.type === 'text') text.push({ type: 'text', text: str(part.text, `${p}.text`)! });
    else if (allowRefusal && part.type === 'refusal') refusal = (refusal ?? '') + str(part.refusal, `${p}.refusal`)!;
    else throw invalidRequest(`'${p}.type' must be 'text'${allowRefusal ? " or 'refusal'" : ''}; got ${JSON.stringify(part.type)}.`, `${p}.type`);
  });
  return refusal === undefined ? { text } : { text, refusal };
}

const DATA_URL = /^data:([a-z]+\/[a-z0-9.+-]+);base64,(.*)$/is;

function imagePart(part: Obj, p: string): IRImagePart {
  const img = part.image_url;
  if (!isObj(img)) throw invalidRequest(`'${p}.image_url' must be an object with a 'url'.`, `${p}.image_url`);
  const url = str(img.url, `${p}.image_url.url`)!;
  const detail = img.detail;
  if (detail !== undefined && detail !== 'auto' && detail !== 'low' && detail !== 'high') {
    throw invalidRequest(`'${p}.image_url.detail' must be auto, low or high.`, `${p}.image_url.detail`);
  }
  let source: IRImagePart['source'];
  const m = DATA_URL.exec(url);
  if (m) {
    source = { kind: 'base64', mediaType: m[1]!.toLowerCase(), data: m[2]! };
  } else if (/^https:\/\//i.test(url)) {
    source = { kind: 'url', url };
  } else {
    throw invalidRequest(`'${p}.image_url.url' must be an https URL or a base64 data URL.`, `${p}.image_url.url`);
  }
  return detail ? { type: 'image', source, detail } : { type: 'image', source };
}

function userContent(content: unknown, param: string): IRUserContentPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw invalidRequest(`'${param}' must be a string or an array of content parts.`, param);
  return content.map((part, i): IRUserContentPart => {
    const p = `${param}[${i}]`;
    if (!isObj(part)) throw invalidRequest(`'${p}' must be an object.`, p);
    switch (part.type) {
      case 'text':
        return { type: 'text', text: str(part.text, `${p}.text`)! };
      case 'image_url':
        return imagePart(part, p);
      case 'input_audio':
      case 'file':
        throw invalidRequest(`'${p}.type' ${String(part.type)} is available only from OpenAI models.`, `${p}.type`);
      default:
        throw invalidRequest(`'${p}.type' must be 'text' or 'image_url'; got ${JSON.stringify(part.type)}.`, `${p}.type`);
    }
  });
}

function assistantMessage(m: Obj, p: string): IRAssistantMessage {
  const out: IRAssistantMessage = { role: 'assistant', content: [], toolCalls: [] };
  if (m.content !== undefined && m.content !== null) {
    const { text, refusal } = textOfParts(m.content, `${p}.content`, true);
    out.content = text.filter((t) => t.text.length > 0);
    if (refusal !== undefined) out.refusal = refusal;
  }
  if (typeof m.refusal === 'string') out.refusal = m.refusal;
  if (m.function_call !== undefined && m.function_call !== null) {
    throw invalidRequest(`'${p}.function_call' is deprecated; use tool_calls.`, `${p}.function_call`);
  }
  if (m.tool_calls !== undefined && m.tool_calls !== null) {
    if (!Array.isArray(m.tool_calls)) throw invalidRequest(`'${p}.tool_calls' must be an array.`, `${p}.tool_calls`);
    out.toolCalls = m.tool_calls.map((tc, j) => {
      const q = `${p}.tool_calls[${j}]`;
      if (!isObj(tc)) throw invalidRequest(`'${q}' must be an object.`, q);
      if (tc.type !== undefined && tc.type !== 'function') {
        throw invalidRequest(`'${q}.type' must be 'function'.`, `${q}.type`);
      }
      const fn = tc.function;
      if (!isObj(fn)) throw invalidRequest(`'${q}.function' must be an object.`, `${q}.function`);
      return {
        id: str(tc.id, `${q}.id`)!,
        name: str(fn.name, `${q}.function.name`)!,
        arguments: str(fn.arguments, `${q}.function.arguments`)!,
      };
    });
  }
  if (typeof m.name === 'string') out.name = m.name;
  return out;
}

function messages(v: unknown): IRMessage[] {
  if (!Array.isArray(v)) throw invalidRequest("'messages' must be an array.", 'messages');
  if (v.length === 0) throw invalidRequest("'messages' must contain at least one message.", 'messages');
  return v.map((m, i): IRMessage => {
    const p = `messages[${i}]`;
    if (!isObj(m)) throw invalidRequest(`'${p}' must be an object.`, p);
    switch (m.role) {
      case 'system':
      case 'developer': {
        const { text } = textOfParts(m.content, `${p}.content`);
        return { role: 'system', origin: m.role, text: text.map((t) => t.text).join('\n') };
      }
      case 'user': {
        const out: IRMessage = { role: 'user', content: userContent(m.content, `${p}.content`) };
        if (typeof m.name === 'string') out.name = m.name;
        return out;
      }
      case 'assistant':
        return assistantMessage(m, p);
      case 'tool': {
        const { text } = textOfParts(m.content, `${p}.content`);
        return {
          role: 'tool',
          toolCallId: str(m.tool_call_id, `${p}.tool_call_id`)!,
          content: text.map((t) => t.text).join(''),
        };
      }
      case 'function':
        throw invalidRequest(`'${p}.role' function is deprecated; use tool messages.`, `${p}.role`);
      default:
        throw invalidRequest(
          `'${p}.role' must be one of system, developer, user, assistant, tool; got ${JSON.stringify(m.role)}.`,
          `${p}.role`,
        );
    }
  });
}

function tools(v: unknown): IRTool[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalidRequest("'tools' must be an array.", 'tools');
  return v.map((t, i): IRTool => {
    const p = `tools[${i}]`;
    if (!isObj(t)) throw invalidRequest(`'${p}' must be an object.`, p);
    if (t.type !== 'function') {
      throw invalidRequest(`'${p}.type' must be 'function'; got ${JSON.stringify(t.type)}.`, `${p}.type`);
    }
    const fn = t.function;
    if (!isObj(fn)) throw invalidRequest(`'${p}.function' must be an object.`, `${p}.function`);
    const name = str(fn.name, `${p}.function.name`)!;
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(name)) {
      throw invalidRequest(`'${p}.function.name' must be 1-64 letters, digits, underscores or dashes.`, `${p}.function.name`);
    }
    const params = fn.parameters ?? { type: 'object', properties: {} };
    if (!isObj(params)) throw invalidRequest(`'${p}.function.parameters' must be a JSON Schema object.`, `${p}.function.parameters`);
    const out: IRTool = { name, parameters: params };
    const description = str(fn.description, `${p}.function.description`, false);
    if (description !== undefined) out.description = description;
    if (typeof fn.strict === 'boolean') out.strict = fn.strict;
    return out;
  });
}

function toolChoice(v: unknown, declared: IRTool[] | undefined): IRToolChoice | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'auto' || v === 'none' || v === 'required') return { type: v };
  if (isObj(v) && v.type === 'function' && isObj(v.function) && typeof v.function.name === 'string') {
    const name = v.function.name;
    if (!declared?.some((t) => t.name === name)) {
      throw invalidRequest(`'tool_choice.function.name' names '${name}', which is not in 'tools'.`, 'tool_choice.function.name');
    }
    return { type: 'tool', name };
  }
  throw invalidRequest(
    "'tool_choice' must be 'auto', 'none', 'required' or {type: 'function', function: {name}}.",
    'tool_choice',
  );
}

function responseFormat(v: unknown): IRResponseFormat | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw invalidRequest("'response_format' must be an object.", 'response_format');
  if (v.type === 'text' || v.type === 'json_object') return { type: v.type };
  if (v.type === 'json_schema') {
    const js = v.json_schema;
    if (!isObj(js)) throw invalidRequest("'response_format.json_schema' must be an object.", 'response_format.json_schema');
    const name = str(js.name, 'response_format.json_schema.name')!;
    const schema = js.schema ?? {};
    if (!isObj(schema)) throw invalidRequest("'response_format.json_schema.schema' must be an object.", 'response_format.json_schema.schema');
    const out: IRResponseFormat = { type: 'json_schema', name, schema };
    if (typeof js.description === 'string') out.description = js.description;
    if (typeof js.strict === 'boolean') out.strict = js.strict;
    return out;
  }
  throw invalidRequest("'response_format.type' must be text, json_object or json_schema.", 'response_format.type');
}

const EFFORTS = new Set(['none', 'minimal', 'low', 'medium', 'high', 'xhigh']);

export interface DecodedChatRequest {
  request: IRChatRequest;
  /** The client asked for the final usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  warnings: IRWarning[];
}

/**
 * Validates and decodes an OpenAI chat request body. `upstreamModel` replaces the client's
 * model id; `providerType` names the provider in messages about unsupported fields.
 */
export function decodeChatRequest(body: unknown, upstreamModel: string, providerType: string): DecodedChatRequest {
  if (!isObj(body)) throw invalidRequest('The request body must be a JSON object.');
  const warnings: IRWarning[] = [];
  for (const key of Object.keys(body)) {
    if (TRANSLATED.has(key) || body[key] === undefined || body[key] === null) continue;
    if (Object.hasOwn(REFUSED, key)) throw unsupportedParameter(key, providerType, REFUSED[key]);
    if (Object.hasOwn(IGNORED_WITH_WARNING, key)) {
      warnings.push({ param: key, message: `ignored: ${IGNORED_WITH_WARNING[key]}` });
      continue;
    }
    throw invalidRequest(`Unrecognized request argument supplied: ${key}`, key);
  }
  const stream = bool(body, 'stream') ?? false;
  let includeUsage = false;
  if (body.stream_options !== undefined && body.stream_options !== null) {
    if (!isObj(body.stream_options)) throw invalidRequest("'stream_options' must be an object.", 'stream_options');
    if (!stream) throw invalidRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
    includeUsage = body.stream_options.include_usage === true;
  }
  const irTools = tools(body.tools);
  const request: IRChatRequest = { model: upstreamModel, messages: messages(body.messages), stream };
  const maxCompletion = num(body, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER, true);
  const maxTokens = num(body, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, true);
  if (maxCompletion !== undefined || maxTokens !== undefined) request.maxTokens = maxCompletion ?? maxTokens!;
  const set = <K extends keyof IRChatRequest>(k: K, v: IRChatRequest[K] | undefined) => {
    if (v !== undefined) request[k] = v;
  };
  set('temperature', num(body, 'temperature', 0, 2));
  set('topP', num(body, 'top_p', 0, 1));
  set('seed', num(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true));
  set('frequencyPenalty', num(body, 'frequency_penalty', -2, 2));
  set('presencePenalty', num(body, 'presence_penalty', -2, 2));
  set('n', num(body, 'n', 1, 128, true));
  set('logprobs', bool(body, 'logprobs'));
  set('topLogprobs', num(body, 'top_logprobs', 0, 20, true));
  set('parallelToolCalls', bool(body, 'parallel_tool_calls'));
  set('user', str(body.user, 'user', false));
  set('serviceTier', str(body.service_tier, 'service_tier', false));
  if (body.stop !== undefined && body.stop !== null) {
    const stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string')) {
      throw invalidRequest("'stop' must be a string or an array of strings.", 'stop');
    }
    request.stop = stop as string[];
  }
  if (body.reasoning_effort !== undefined && body.reasoning_effort !== null) {
    if (typeof body.reasoning_effort !== 'string' || !EFFORTS.has(body.reasoning_effort)) {
      throw invalidRequest("'reasoning_effort' must be one of none, minimal, low, medium, high, xhigh.", 'reasoning_effort');
    }
    request.reasoningEffort = body.reasoning_effort as IRReasoningEffort;
  }
  if (body.logit_bias !== undefined && body.logit_bias !== null) {
    if (!isObj(body.logit_bias)) throw invalidRequest("'logit_bias' must be an object.", 'logit_bias');
    request.logitBias = body.logit_bias as Record<string, number>;
  }
  if (body.metadata !== undefined && body.metadata !== null) {
    if (!isObj(body.metadata)) throw invalidRequest("'metadata' must be an object.", 'metadata');
    request.metadata = body.metadata as Record<string, string>;
  }
  set('tools', irTools);
  set('toolChoice', toolChoice(body.tool_choice, irTools));
  set('responseFormat', responseFormat(body.response_format));
  return { request, includeUsage, warnings };
}
