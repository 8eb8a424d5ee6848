import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * Secrets the control plane must use again, not only recognise: a webhook's
 * signing key has to sign every delivery, so it cannot be stored as a hash
 * the way API keys are. With `MODELGATE_SECRETS_KEY` set they are sealed
 * with AES-256-GCM, bound to the row they belong to (the `context`, as
 * additional authenticated data), so a database dump alone does not reveal
 * them and a sealed value copied onto another row does not open. Without a
 * key they are stored as they are, marked `plain`, and the control plane
 * warns at start: whoever reads the table can then sign events as
 * modelgate. Setting a key later seals secrets written from then on; plain
 * ones keep working until they are replaced (PUT with a new `secret`).
 */
export interface SecretBox {
  /** Whether secrets are sealed (a key is configured). */
  readonly sealing: boolean;
  seal(secret: string, context: string): string;
  /** Throws when the value is sealed and no key (or another key) is configured. */
  open(stored: string, context: string): string;
}

const SEALED = "aesgcm1";
const PLAIN = "plain";
const IV_BYTES = 12;
const SECRETS_KEY_BYTES = 32;

export function createSecretBox(key: Buffer | undefined): SecretBox {
  if (key !== undefined && key.length !== SECRETS_KEY_BYTES) {
    throw new Error(`the secrets key must be ${SECRETS_KEY_BYTES} bytes`);
  }
  return {
    sealing: key !== undefined,
    seal(secret, context) {
      if (!key) return `${PLAIN}.${secret}`;
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(context, "utf8"));
      const sealed = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
      return [SEALED, iv, cipher.getAuthTag(), sealed]
        .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
        .join(".");
    },
    open(stored, context) {
      const [scheme] = stored.split(".", 1);
      if (scheme === PLAIN) return stored.slice(PLAIN.length + 1);
      if (scheme !== SEALED) throw new Error("the stored secret has an unknown format");
      if (!key) throw new Error("the stored secret is sealed but MODELGATE_SECRETS_KEY is not set");
      const [, iv, tag, sealed] = stored.split(".").map((part) => Buffer.from(part, "base64url"));
      if (!iv || !tag || !sealed) throw new Error("the stored secret is malformed");
      const decipher = createDecipheriv("aes-256-gcm", key, iv);
      decipher.setAAD(Buffer.from(context, "utf8"));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(sealed), decipher.final()]).toString("utf8");
      } catch {
        // Never the cause's text: it could only say "unsupported state or unable to authenticate data".
        throw new Error(
          "the stored secret does not open with MODELGATE_SECRETS_KEY (another key, or another row's value)",
        );
      }
    },
  };
}

/** `MODELGATE_SECRETS_KEY`: 32 bytes as base64 (44 characters) or hex (64 characters). */
export function parseSecretsKey(value: string): Buffer | undefined {
  const trimmed = value.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, "hex") : Buffer.from(trimmed, "base64");
  return key.length === SECRETS_KEY_BYTES ? key : undefined;
}
