// docker-compose.yml's `secrets` service: creates, once, the tokens the
// stack's services share, in the volume mounted at /var/lib/modelgate:
//   admin-token     the control plane's bootstrap admin token
//   gateway-token   what gateways present to the control plane
// Files that exist are kept, so every later `docker compose up` uses the
// same tokens. Written by the image's user with mode 0600; the services that
// read them run as that user and mount the volume read-only.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";

const DIR = process.env.SECRETS_DIR ?? "/var/lib/modelgate";
const TOKENS = { "admin-token": "mgadmin_", "gateway-token": "mggateway_" };

for (const [file, prefix] of Object.entries(TOKENS)) {
  const target = path.join(DIR, file);
  try {
    // "wx": never overwrite; 32 random bytes, as the apps' own generated secrets.
    writeFileSync(target, `${prefix}${randomBytes(32).toString("base64url")}\n`, { flag: "wx", mode: 0o600 });
    process.stdout.write(`secrets: created ${target}\n`);
  } catch (error) {
    if (error.code !== "EEXIST") throw error;
    process.stdout.write(`secrets: kept ${target}\n`);
  }
}
