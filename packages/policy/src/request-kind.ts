/**
 * What a request does, independent of which runtime serves it. Policies grant
 * operations; the body format tells the engine where a request keeps its
 * prompt and its generation parameters.
 */
export const OPERATIONS = ["inference", "embeddings", "models.list", "read", "raw"] as const;
export type Operation = (typeof OPERATIONS)[number];

export type ConnectionProtocol = "openai" | "ollama" | "tgi" | "http";

export type BodyFormat =
  | "openai.chat"
  | "openai.completions"
  | "openai.embeddings"
  | "ollama.generate"
  | "ollama.chat"
  | "ollama.embed"
  | "tgi.generate"
  /** Anthropic's Messages API (`POST /v1/messages`), which vLLM and Ollama serve for Anthropic's clients. */
  | "anthropic.messages"
  /** OpenAI's Responses API (`POST /v1/responses`), which vLLM and Ollama serve. */
  | "openai.responses"
  /** vLLM's (and llama.cpp's) rerank and score: a query scored against documents. */
  | "vllm.score"
  /** vLLM's (and llama.cpp's) tokenize and detokenize. */
  | "vllm.tokenize"
  | "none";

export interface RequestKind {
  operation: Operation;
  format: BodyFormat;
}
