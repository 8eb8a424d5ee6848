// Pods as the rendered workloads would make them, and the selector and port
// arithmetic Kubernetes applies to them.
import { describeObject, type KubeObject } from "./render.js";

export type Labels = Record<string, string>;

export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[];
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; [source: string]: unknown };
}

interface Probe {
  httpGet?: { path?: string; port: number | string };
  exec?: { command: string[] };
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}

interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[]; optional?: boolean };
  emptyDir?: unknown;
  persistentVolumeClaim?: unknown;
  [source: string]: unknown;
}

interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    seccompProfile?: { type: string };
  };
}

/** A pod template and the workload it belongs to. */
export interface Pod {
  owner: KubeObject;
  name: string;
  namespace: string;
  labels: Labels;
  spec: PodSpec;
}

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

export function pods(objects: KubeObject[]): Pod[] {
  return objects.flatMap((owner) => {
    const template = WORKLOADS.has(owner.kind)
      ? owner.spec?.template
      : owner.kind === "CronJob"
        ? owner.spec?.jobTemplate?.spec?.template
        : owner.kind === "Pod"
          ? { metadata: owner.metadata, spec: owner.spec }
          : undefined;
    if (!template) return [];
    return [
      {
        owner,
        name: describeObject(owner),
        namespace: owner.metadata.namespace ?? "",
        labels: template.metadata?.labels ?? {},
        spec: template.spec as PodSpec,
      },
    ];
  });
}

export const allContainers = (pod: Pod): Container[] => [...(pod.spec.initContainers ?? []), ...pod.spec.containers];

/** An empty selector selects everything, as in NetworkPolicies and PodDisruptionBudgets. */
export function selects(selector: LabelSelector | undefined, labels: Labels): boolean {
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, key);
    const matches =
      operator === "In"
        ? has && values.includes(labels[key] ?? "")
        : operator === "NotIn"
          ? !has || !values.includes(labels[key] ?? "")
          : operator === "Exists"
            ? has
            : !has;
    if (!matches) return false;
  }
  return true;
}

/** A Service's selector: a plain map, and an empty one selects nothing (it has no endpoints of its own). */
export const serviceSelects = (selector: Labels | undefined, labels: Labels) =>
  selector !== undefined && Object.keys(selector).length > 0 && selects({ matchLabels: selector }, labels);

/** The container port a probe or Service names, by number or by name. */
export function resolvePort(container: Container, port: number | string): number | undefined {
  if (typeof port === "number") return container.ports?.some((p) => p.containerPort === port) ? port : undefined;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** Name, tag and digest of an image reference (`registry:5000/path/name:tag@sha256:…`). */
export function parseImage(reference: string): { repository: string; name: string; tag?: string; digest?: string } {
  const [withoutDigest, digest] = reference.split("@");
  const lastSlash = (withoutDigest ?? "").lastIndexOf("/");
  const lastColon = (withoutDigest ?? "").lastIndexOf(":");
  const tag = lastColon > lastSlash ? withoutDigest?.slice(lastColon + 1) : undefined;
  const repository = tag === undefined ? (withoutDigest ?? "") : (withoutDigest ?? "").slice(0, lastColon);
  return { repository, name: repository.slice(repository.lastIndexOf("/") + 1), tag, digest };
}
