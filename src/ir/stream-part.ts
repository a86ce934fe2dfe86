import type { GatewayError } from './errors.js';
import type { IRFinishReason } from './finish-reason.js';
import type { IRUsage } from './usage.js';

/**
 * One part of a streamed response. Provider stream decoders turn parsed SSE events into these;
 * the inbound dialect encodes them for the client.
 */
export type IRStreamPart =
  /** Upstream announced the response (id, model). Optional; at most once. */
  | { type: 'start'; upstreamId?: string; model?: string }
  | { type: 'text-delta'; text: string }
  | { type: 'reasoning-delta'; text: string }
  | { type: 'refusal-delta'; text: string }
  /** A new tool call. `index` counts tool calls from 0 in the order they start. */
  | { type: 'tool-call-start'; index: number; id: string; name: string }
  | { type: 'tool-call-delta'; index: number; argumentsDelta: string }
  | { type: 'finish'; finishReason: IRFinishReason }
  /** Final usage. May come before or after `finish`; the last one wins. */
  | { type: 'usage'; usage: IRUsage }
  /** The upstream failed mid-stream. Terminal. */
  | { type: 'error'; error: GatewayError };

/** An SSE event as yielded by the shared parser. */
export interface SSEEvent {
  event?: string;
  data: string;
  id?: string;
}

/**
 * Stateful decoder of one upstream stream. `push` is called for each parsed SSE event in
 * order; `end` when the upstream body ended (to detect a stream that stopped early).
 */
export interface StreamDecoder {
  push(event: SSEEvent): IRStreamPart[];
  end(): IRStreamPart[];
}
