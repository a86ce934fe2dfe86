import type { IRFinishReason } from '../../ir/finish-reason.js';

/**
 * Maps an Anthropic `stop_reason` to OpenAI's finish reason.
 *
 * - `pause_turn` (a server tool paused a long turn) has no OpenAI equivalent; the turn did end
 *   normally from the client's point of view, so it maps to `stop`.
 * - Unknown or missing reasons map to `stop`: Anthropic may add new values at any time.
 *
 * @see https://docs.anthropic.com/en/api/messages#response-stop-reason
 * @see https://docs.anthropic.com/en/api/handling-stop-reasons
 */
export function mapStopReason(stopReason: string | null | undefined): IRFinishReason {
  switch (stopReason) {
    case 'end_turn':
    case 'stop_sequence':
    case 'pause_turn':
      return 'stop';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'stop';
  }
}
