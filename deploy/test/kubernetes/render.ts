// Rendering the kustomizations with kubectl, and checking each object
// against the Kubernetes schemas (kubernetes-models, and cert-manager's
// models for its custom resources).
import { execFileSync } from "node:child_process";
import * as certManager from "@kubernetes-models/cert-manager";
import * as kubernetes from "kubernetes-models";
import { parseAllDocuments } from "yaml";

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are read as data, and each check says what it expects.
  spec?: any;
}

/** kubectl's version line for kustomize (`v5.5.0`), or why it cannot render here. */
export function kustomizeVersion(): { version: string } | { missing: string } {
  let output: string;
  try {
    output = execFileSync("kubectl", ["version", "--client"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    return { missing: `kubectl is not installed (${(error as NodeJS.ErrnoException).code ?? error})` };
  }
  const version = /Kustomize Version: (v(\d+)\.\d+\.\d+)/.exec(output);
  // Overlays use kustomize v5's fields (labels, replicas, patches); older
  // kubectl (before 1.27, such as Debian's kubernetes-client) cannot read them.
  if (!version || Number(version[2]) < 5) {
    return { missing: `kubectl's kustomize is older than v5 (${output.trim().split("\n").join("; ")})` };
  }
  return { version: version[1] ?? "" };
}

export function render(dir: string): KubeObject[] {
  const output = execFileSync("kubectl", ["kustomize", dir], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseAllDocuments(output).map((document) => {
    if (document.errors.length > 0) throw new Error(`${dir}: ${document.errors[0]?.message}`);
    return document.toJS() as KubeObject;
  });
}

export const describeObject = (object: KubeObject) =>
  `${object.kind}/${object.metadata.namespace ? `${object.metadata.namespace}/` : ""}${object.metadata.name}`;

type ModelClass = { prototype: { validate(): void } };

/** kubernetes-models' namespaces are named after the API group: `networking.k8s.io` → `networkingK8sIo`. */
function modelFor(apiVersion: string, kind: string): ModelClass | undefined {
  const [group = "", version = ""] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const namespaceKey = group === "" ? "v1" : group.replace(/[.-]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  // biome-ignore lint/suspicious/noExplicitAny: a lookup by the object's own apiVersion and kind.
  const lookup = (root: any) => (group === "" ? root.v1?.[kind] : root[namespaceKey]?.[version]?.[kind]);
  return lookup(kubernetes) ?? (group === "cert-manager.io" ? lookup(certManager) : undefined);
}

/**
 * The object as the validator sees it: every property the schema declares
 * is read by name, and maps (labels, resource quantities) are iterated, so
 * a property that was neither read nor iterated is unknown to the schema.
 * kubernetes-models' schemas allow unknown properties (the API server
 * would refuse them, or drop them unseen); this finds them.
 */
function tracked(value: unknown, path: string, unread: Map<string, Set<string>>, iterated: Set<string>): unknown {
  if (value === null || typeof value !== "object") return value;
  if (!Array.isArray(value)) unread.set(path, new Set(Object.keys(value)));
  return new Proxy(value as object, {
    get(target, key, receiver) {
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.hasOwn(target, key)) return child;
      unread.get(path)?.delete(key);
      return tracked(child, `${path}/${key}`, unread, iterated);
    },
    has(target, key) {
      if (typeof key === "string") unread.get(path)?.delete(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      iterated.add(path);
      return Reflect.ownKeys(target);
    },
  });
}

/** Schema violations and properties the schema does not know, per object. */
export function schemaProblems(objects: KubeObject[]): string[] {
  return objects.flatMap((object) => {
    const model = modelFor(object.apiVersion, object.kind);
    if (!model) return [`${describeObject(object)}: no schema for ${object.apiVersion} ${object.kind}`];
    const unread = new Map<string, Set<string>>();
    const iterated = new Set<string>();
    try {
      // The model's own validate function, on the object itself (a model
      // instance would be a copy, and the copy would read everything).
      model.prototype.validate.call(tracked(object, "", unread, iterated));
    } catch (error) {
      return [`${describeObject(object)}: ${(error as Error).message}`];
    }
    return [...unread]
      .filter(([path]) => !iterated.has(path))
      .flatMap(([path, keys]) => [...keys].map((key) => `${describeObject(object)}: unknown field ${path}/${key}`));
  });
}
