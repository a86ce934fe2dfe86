/**
 * OpenAI's finish reasons; every provider's stop reason maps to one of these.
 * @see https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices
 */
export type IRFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';
