// The masking engine (profiles, detectors, whole-text and streaming
// masking) and the response-format adapters (field paths, per-protocol
// defaults, the masker for SSE, NDJSON, JSON and text bodies).
export { checkMaskingPattern } from "./detectors/custom.js";
export {
  type FieldPath,
  FieldPathError,
  MAX_PATH_LENGTH,
  MAX_PATH_PARTS,
  type PathSegment,
  parseFieldPath,
} from "./json-path.js";
export {
  DEFAULT_MAX_HOLDBACK,
  type DetectedValue,
  type MaskCounts,
  Masker,
  type MaskerOptions,
  MaskingError,
  type MaskingStream,
  sessionMaskerOptions,
} from "./masker.js";
export { confusableLetters, matchForm, normalizeForMatching } from "./normalize.js";
export {
  type CustomDetector,
  type DenyList,
  ENTITY_TYPES,
  type EntityType,
  MASK_NAME,
  type MaskingProfile,
  type MaskingStyle,
  mergeProfiles,
  resolveFields,
} from "./profile.js";
export { MAX_EVENT_BYTES } from "./response-adapters.js";
export type { TextMasker } from "./response-documents.js";
export { API_FIELDS, DEFAULT_FIELDS, type ResponseProtocol } from "./response-fields.js";
export {
  createResponseMasker,
  DEFAULT_TIME_BUDGET_MS,
  type ResponseMasker,
  type ResponseMaskerOptions,
} from "./response-masker.js";
