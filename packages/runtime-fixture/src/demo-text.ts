// The answer every model gives unless `completionText` replaces it. It says
// plainly what it is, so nobody who tries the zero-config demo mistakes it for
// a model's output. Around 600 bytes: long enough to stream in visible pieces
// and to be truncated by a token limit, short enough to read in a log.
const DEMO_TEXT =
  "This is the modelgate demo runtime — no model is running. modelgate passed your request through " +
  "its gateway to this stand-in, which answers every prompt with this same fixed text so that routing, " +
  "authentication, quotas and streaming can be tried without a GPU. Nothing you send is interpreted. " +
  "To get real answers, register a model runtime such as vLLM, Ollama or Text Generation Inference " +
  "with the control plane and point its connection at it. Each word of this text counts as one token, " +
  "and a streamed answer arrives in timed chunks, as it would from a real runtime.";

/** The demo answer, prefixed with the label when one is given. */
export function demoText(label?: string): string {
  return label === undefined || label === "" ? DEMO_TEXT : `[${label}] ${DEMO_TEXT}`;
}
