// oidc-provider ships no type declarations. This covers the little the test
// identity provider uses; configuration stays loosely typed on purpose.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
  export default Provider;
}
