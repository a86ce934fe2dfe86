/**
 * Embeddings request and result, in OpenAI's semantics.
 * @see https://platform.openai.com/docs/api-reference/embeddings/create
 */
export interface IREmbeddingsRequest {
  /** Upstream model id. */
  model: string;
  /** Inputs as strings. (Token-array inputs are passed through only to OpenAI-style upstreams.) */
  input: string[];
  dimensions?: number;
  encodingFormat?: 'float' | 'base64';
  user?: string;
}

export interface IREmbeddingsResult {
  model?: string;
  /** One vector per input, in input order. */
  embeddings: number[][];
  promptTokens: number;
}
