/**
 * Anthropic Messages SSE events → IR stream parts.
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming
 */
import { GatewayError } from '../../ir/errors.js';
import type { IRStreamPart, SSEEvent, StreamDecoder } from '../../ir/stream-part.js';
import { anthropicStreamError, errorEventFields } from './anthropic-error.js';
import { normaliseUsage, type AnthropicCacheCreation, type AnthropicUsage } from './convert-response.js';
import { mapStopReason } from './map-stop-reason.js';

type Payload = Record<string, unknown>;

function isRecord(v: unknown): v is Payload {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function badStream(what: string): IRStreamPart {
  return { type: 'error', error: new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Anthropic stream: ${what}.`) };
}

function parsePayload(data: string): Payload | undefined {
  try {
    const v: unknown = JSON.parse(data);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Numeric usage fields of `b` override those of `a` (message_delta usage is cumulative), and so
 * do the numeric fields of `b.cache_creation`.
 */
function mergeUsage(a: AnthropicUsage, b: unknown): AnthropicUsage {
  const out: AnthropicUsage = { ...a };
  if (!isRecord(b)) return out;
  for (const key of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) {
    const v = b[key];
    if (typeof v === 'number') out[key] = v;
  }
  if (isRecord(b.cache_creation)) {
    const split: AnthropicCacheCreation = { ...(out.cache_creation ?? {}) };
    for (const key of ['ephemeral_5m_input_tokens', 'ephemeral_1h_input_tokens'] as const) {
      const v = b.cache_creation[key];
      if (typeof v === 'number') split[key] = v;
    }
    out.cache_creation = split;
  }
  return out;
}

/**
 * A decoder for one Anthropic stream. Tool calls are numbered from 0 in the order they start,
 * independently of Anthropic's content block index (which also counts text and thinking blocks).
 * Usage combines the prompt counts of `message_start` with the output count of `message_delta`.
 * Never throws: malformed data, an `error` event, or a stream that ends before `message_stop`
 * yield a terminal `error` part.
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types
 */
export class AnthropicStreamDecoder implements StreamDecoder {
  private done = false;
  private usage: AnthropicUsage = {};
  private nextToolIndex = 0;
  /** Content block index → tool call index, for `tool_use` blocks. */
  private readonly toolIndexByBlock = new Map<number, number>();
  /** Tool call indexes that received some argument text. */
  private readonly toolsWithArguments = new Set<number>();

  push(event: SSEEvent): IRStreamPart[] {
    if (this.done) return [];
    const payload = parsePayload(event.data);
    if (!payload) return this.fail(badStream('an event is not a JSON object'));
    const type = typeof payload.type === 'string' ? payload.type : event.event;
    switch (type) {
      case 'message_start':
        return this.onMessageStart(payload);
      case 'content_block_start':
        return this.onBlockStart(payload);
      case 'content_block_delta':
        return this.onBlockDelta(payload);
      case 'content_block_stop':
        return this.onBlockStop(payload);
      case 'message_delta':
        return this.onMessageDelta(payload);
      case 'message_stop':
        this.done = true;
        return [];
      case 'error': {
        const { type: errorType, message } = errorEventFields(payload);
        return this.fail({ type: 'error', error: anthropicStreamError(errorType, message) });
      }
      default:
        // `ping`, and event types Anthropic may add later (its versioning policy allows new ones).
        return [];
    }
  }

  end(): IRStreamPart[] {
    if (this.done) return [];
    return this.fail(badStream('upstream stream ended early'));
  }

  private fail(part: IRStreamPart): IRStreamPart[] {
    this.done = true;
    return [part];
  }

  private onMessageStart(p: Payload): IRStreamPart[] {
    const message = isRecord(p.message) ? p.message : {};
    this.usage = mergeUsage({}, message.usage);
    const start: IRStreamPart = { type: 'start' };
    if (typeof message.id === 'string') start.upstreamId = message.id;
    if (typeof message.model === 'string') start.model = message.model;
    return [start];
  }

  private onBlockStart(p: Payload): IRStreamPart[] {
    const block = p.content_block;
    if (typeof p.index !== 'number' || !isRecord(block)) return this.fail(badStream('content_block_start without a block'));
    switch (block.type) {
      case 'text':
        return typeof block.text === 'string' && block.text ? [{ type: 'text-delta', text: block.text }] : [];
      case 'thinking':
        return typeof block.thinking === 'string' && block.thinking ? [{ type: 'reasoning-delta', text: block.thinking }] : [];
      case 'tool_use':
        return this.onToolStart(p.index, block);
      default:
        return [];
    }
  }

  private onToolStart(blockIndex: number, block: Payload): IRStreamPart[] {
    if (typeof block.id !== 'string' || typeof block.name !== 'string') {
      return this.fail(badStream('tool_use block without id or name'));
    }
    const index = this.nextToolIndex++;
    this.toolIndexByBlock.set(blockIndex, index);
    const parts: IRStreamPart[] = [{ type: 'tool-call-start', index, id: block.id, name: block.name }];
    // The input normally arrives as input_json_delta; an input given up front is kept.
    if (isRecord(block.input) && Object.keys(block.input).length > 0) {
      this.toolsWithArguments.add(index);
      parts.push({ type: 'tool-call-delta', index, argumentsDelta: JSON.stringify(block.input) });
    }
    return parts;
  }

  private onBlockDelta(p: Payload): IRStreamPart[] {
    const delta = p.delta;
    if (!isRecord(delta)) return this.fail(badStream('content_block_delta without a delta'));
    switch (delta.type) {
      case 'text_delta':
        return typeof delta.text === 'string' && delta.text ? [{ type: 'text-delta', text: delta.text }] : [];
      case 'thinking_delta':
        return typeof delta.thinking === 'string' && delta.thinking ? [{ type: 'reasoning-delta', text: delta.thinking }] : [];
      case 'input_json_delta': {
        const index = typeof p.index === 'number' ? this.toolIndexByBlock.get(p.index) : undefined;
        if (index === undefined) return this.fail(badStream('input_json_delta outside a tool_use block'));
        if (typeof delta.partial_json !== 'string' || delta.partial_json === '') return [];
        this.toolsWithArguments.add(index);
        return [{ type: 'tool-call-delta', index, argumentsDelta: delta.partial_json }];
      }
      default:
        // signature_delta (thinking signatures), citations_delta: nothing to carry in the IR.
        return [];
    }
  }

  /** A tool call without any argument text gets `{}`, so clients can always parse its arguments. */
  private onBlockStop(p: Payload): IRStreamPart[] {
    const index = typeof p.index === 'number' ? this.toolIndexByBlock.get(p.index) : undefined;
    if (index === undefined || this.toolsWithArguments.has(index)) return [];
    this.toolsWithArguments.add(index);
    return [{ type: 'tool-call-delta', index, argumentsDelta: '{}' }];
  }

  private onMessageDelta(p: Payload): IRStreamPart[] {
    const parts: IRStreamPart[] = [];
    const delta = isRecord(p.delta) ? p.delta : {};
    if (typeof delta.stop_reason === 'string') {
      parts.push({ type: 'finish', finishReason: mapStopReason(delta.stop_reason) });
    }
    if (isRecord(p.usage)) {
      this.usage = mergeUsage(this.usage, p.usage);
      parts.push({ type: 'usage', usage: normaliseUsage(this.usage) });
    }
    return parts;
  }
}

/** A fresh decoder for one stream. */
export function createAnthropicStreamDecoder(): StreamDecoder {
  return new AnthropicStreamDecoder();
}
