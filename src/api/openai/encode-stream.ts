/**
 * IR stream parts → OpenAI `chat.completion.chunk` SSE events, as OpenAI sends them: a first
 * chunk with the role, content deltas, tool-call deltas carrying `index`, `id` and `name` on
 * their first chunk, a chunk with `finish_reason`, then (with `include_usage`) a chunk with
 * empty `choices` and the usage, then `data: [DONE]`. A failure ends the stream with an error
 * event and no `[DONE]`.
 * @see https://platform.openai.com/docs/api-reference/chat-streaming/streaming
 */
import type { GatewayError } from '../../ir/errors.js';
import type { IRStreamPart } from '../../ir/stream-part.js';
import type { IRUsage } from '../../ir/usage.js';
import { encodeUsage } from './encode-response.js';
import { encodeStreamError } from './encode-error.js';

export const DONE_EVENT = 'data: [DONE]\n\n';

export class OpenAIStreamEncoder {
  private readonly head: string;
  private readonly usageHead: string;
  private started = false;
  private finished = false;
  private usage: IRUsage | undefined;

  /**
   * `provider` (the provider id) goes into every chunk, as OpenRouter sends it; `costOf` prices
   * the final usage for its `usage.cost`.
   */
  constructor(
    id: string,
    model: string,
    created: number,
    private readonly includeUsage: boolean,
    provider?: string,
    private readonly costOf?: (usage: IRUsage) => number,
  ) {
    const prov = provider !== undefined ? `,"provider":${JSON.stringify(provider)}` : '';
    const common = `{"id":${JSON.stringify(id)}${prov},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)}`;
    this.head = `data: ${common},"choices":[{"index":0,"delta":`;
    this.usageHead = `data: ${common},"choices":[],"usage":`;
  }

  private chunk(delta: unknown, finishReason: string | null = null): string {
    return `${this.head}${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finishReason === null ? 'null' : JSON.stringify(finishReason)}}]}\n\n`;
  }

  /** The role chunk OpenAI sends first. */
  private opening(): string {
    this.started = true;
    return this.chunk({ role: 'assistant', content: '', refusal: null });
  }

  /** Encodes one part; returns the text to write (possibly empty). */
  encode(part: IRStreamPart): string {
    let out = this.started ? '' : this.opening();
    switch (part.type) {
      case 'start':
        return out;
      case 'text-delta':
        return part.text ? out + this.chunk({ content: part.text }) : out;
      case 'reasoning-delta':
        return part.text ? out + this.chunk({ reasoning: part.text }) : out;
      case 'refusal-delta':
        return part.text ? out + this.chunk({ refusal: part.text }) : out;
      case 'tool-call-start':
        return (
          out +
          this.chunk({
            tool_calls: [{ index: part.index, id: part.id, type: 'function', function: { name: part.name, arguments: '' } }],
          })
        );
      case 'tool-call-delta':
        return part.argumentsDelta
          ? out + this.chunk({ tool_calls: [{ index: part.index, function: { arguments: part.argumentsDelta } }] })
          : out;
      case 'finish':
        if (this.finished) return out;
        this.finished = true;
        return out + this.chunk({}, part.finishReason);
      case 'usage':
        this.usage = part.usage;
        return out;
      case 'error':
        return out + encodeStreamError(part.error);
    }
  }

  /** After the last part of a successful stream: the usage chunk (if asked for) and `[DONE]`. */
  end(): string {
    let out = this.started ? '' : this.opening();
    if (!this.finished) {
      this.finished = true;
      out += this.chunk({}, 'stop');
    }
    if (this.includeUsage && this.usage) out += `${this.usageHead}${JSON.stringify(encodeUsage(this.usage, this.costOf?.(this.usage)))}}\n\n`;
    return out + DONE_EVENT;
  }

  /** Ends a failed stream: an error event, no `[DONE]`. */
  fail(err: GatewayError): string {
    return encodeStreamError(err);
  }
}
