import type { IRFinishReason } from './finish-reason.js';
import type { IRToolCall } from './request.js';
import type { IRUsage } from './usage.js';

/** A complete (non-streamed) chat result from any provider. */
export interface IRChatResult {
  /** The upstream's own id for the response, if it gave one. */
  upstreamId?: string;
  /** The model the upstream says answered. */
  model?: string;
  /** Concatenated text output, or null when there was none. */
  text: string | null;
  /** Reasoning/thinking text where the provider returns it. */
  reasoning?: string;
  refusal: string | null;
  toolCalls: IRToolCall[];
  finishReason: IRFinishReason;
  usage: IRUsage;
}
