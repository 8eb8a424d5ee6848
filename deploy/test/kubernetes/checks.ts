// What a rendered set of manifests must hold, checked against the code:
// each app's configuration loader, the Dockerfile, the ops listener's
// paths, and Kubernetes' own selection rules. Every check returns the
// problems it found, so a test can show both a clean render and a broken one.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AppName, unknownVariables } from "../app-env.js";
import { type AppConfig, appOf, dockerfileFacts, type SecretCatalog, type Started, start } from "./app-config.js";
import { describeObject, type KubeObject, schemaProblems } from "./render.js";
import {
  allContainers,
  type Container,
  type LabelSelector,
  type Labels,
  type Pod,
  parseImage,
  pods,
  resolvePort,
  selects,
  serviceSelects,
} from "./workloads.js";

export interface CheckOptions {
  catalog: SecretCatalog;
  dockerfile: string;
  /** Overlays deploy a release: the image must name one (a tag other than latest, or a digest). */
  pinnedImage: boolean;
}

/** A container of the image as started: the environment it gets, whether or not its app accepts it. */
interface Launched {
  pod: Pod;
  container: Container;
  app: AppName;
  started: Started;
}

/** One whose app accepted its configuration, with what the app made of it. */
interface AppContainer extends Launched {
  loaded: AppConfig;
}

/** The ops listener's paths (startOpsServer in @modelgate/core). */
const LIVENESS_PATH = "/livez";
const READINESS_PATH = "/readyz";

/** How long after SIGTERM each app exits at the latest (its main.ts), before its drain settings. */
const EXIT_AFTER_SIGTERM_MS = { gateway: 35_000, "control-plane": 10_000 } as const;
/** An agent exits once drained; this covers closing its tunnels and ops listener. */
const AGENT_EXIT_MARGIN_MS = 5_000;

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);
const LOOPBACK = /^(localhost|127\.[0-9.]+|\[?::1\]?)$/;

interface Listener {
  name: string;
  host: string;
  port: number;
}

function listeners(loaded: AppConfig): Listener[] {
  switch (loaded.app) {
    case "gateway":
      return [
        { name: "client", host: loaded.config.host, port: loaded.config.port },
        { name: "tunnel", host: loaded.config.tunnelHost, port: loaded.config.tunnelPort },
        { name: "ops", host: loaded.config.ops.host, port: loaded.config.ops.port },
      ];
    case "control-plane":
      return [
        { name: "API", host: loaded.config.host, port: loaded.config.port },
        { name: "gRPC", host: loaded.config.grpc.host, port: loaded.config.grpc.port },
        { name: "ops", host: loaded.config.ops.host, port: loaded.config.ops.port },
      ];
    case "agent":
      return [{ name: "ops", host: loaded.config.ops.host, port: loaded.config.ops.port }];
    case "migrate":
      return [];
  }
}

const opsPort = (loaded: AppConfig) => listeners(loaded).find((listener) => listener.name === "ops")?.port;

function securityProblems(pod: Pod): string[] {
  const problems: string[] = [];
  const { spec } = pod;
  if (spec.automountServiceAccountToken !== false) {
    problems.push(`${pod.name}: mounts a service-account token (automountServiceAccountToken: false)`);
  }
  for (const container of allContainers(pod)) {
    const where = `${pod.name} container ${container.name}`;
    const context = container.securityContext ?? {};
    if ((context.runAsNonRoot ?? spec.securityContext?.runAsNonRoot) !== true)
      problems.push(`${where}: may run as root`);
    if ((context.runAsUser ?? spec.securityContext?.runAsUser) === 0) problems.push(`${where}: runs as root`);
    if (context.readOnlyRootFilesystem !== true) problems.push(`${where}: root filesystem is writable`);
    if (context.allowPrivilegeEscalation !== false) problems.push(`${where}: may escalate privileges`);
    if (context.privileged === true) problems.push(`${where}: is privileged`);
    if (!context.capabilities?.drop?.includes("ALL")) problems.push(`${where}: keeps capabilities (drop ALL)`);
    if ((context.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities`);
    if ((context.seccompProfile ?? spec.securityContext?.seccompProfile)?.type !== "RuntimeDefault") {
      problems.push(`${where}: no RuntimeDefault seccomp profile`);
    }
    const { requests = {}, limits = {} } = container.resources ?? {};
    for (const missing of [
      requests.cpu === undefined && "requests.cpu",
      requests.memory === undefined && "requests.memory",
      limits.memory === undefined && "limits.memory",
    ]) {
      if (missing) problems.push(`${where}: no ${missing}`);
    }
  }
  return problems;
}

/** The container against the image: entrypoint, user, app argument. */
function imageProblems(pod: Pod, container: Container, options: CheckOptions): string[] {
  const problems: string[] = [];
  const where = `${pod.name} container ${container.name}`;
  const dockerfile = dockerfileFacts(options.dockerfile);
  if (!dockerfile.entrypoint.some((part) => part.endsWith("/bin/modelgate.mjs"))) {
    problems.push("deploy/Dockerfile: the entrypoint is not bin/modelgate.mjs");
  }
  // The entrypoint (tini, then the app picker) must run: a command replaces it.
  if (container.command !== undefined && JSON.stringify(container.command) !== JSON.stringify(dockerfile.entrypoint)) {
    problems.push(`${where}: command ${JSON.stringify(container.command)} replaces the image's entrypoint`);
  }
  if (container.args?.length !== 1 || appOf(container) === "unknown") {
    problems.push(`${where}: args ${JSON.stringify(container.args)} must be one app of the image`);
  }
  const uid = container.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser;
  if (uid !== undefined && uid !== dockerfile.uid) {
    problems.push(`${where}: runs as ${uid}, the image's files belong to ${dockerfile.uid}`);
  }
  return problems;
}

/** An overlay deploys a release: every image names one, so a re-pull cannot change what runs. */
function releaseProblems(pod: Pod): string[] {
  return allContainers(pod).flatMap((container) => {
    const image = parseImage(container.image);
    if (image.digest !== undefined || (image.tag !== undefined && image.tag !== "latest")) return [];
    return [`${pod.name} container ${container.name}: image ${container.image} names no release (a tag or a digest)`];
  });
}

function listenerProblems({ pod, container, loaded }: AppContainer, dockerfileExposed: Set<number>): string[] {
  const problems: string[] = [];
  const where = `${pod.name} container ${container.name}`;
  const own = listeners(loaded);
  const declared = (container.ports ?? []).map((port) => port.containerPort);
  for (const port of declared) {
    if (!own.some((listener) => listener.port === port))
      problems.push(`${where}: declares port ${port}, where ${loaded.app} does not listen`);
  }
  for (const listener of own) {
    if (!declared.includes(listener.port))
      problems.push(`${where}: its ${listener.name} port ${listener.port} is not declared`);
    // The kubelet and other pods connect to the pod's address.
    if (!WILDCARD_HOSTS.has(listener.host))
      problems.push(`${where}: its ${listener.name} listener binds ${listener.host}, out of the pod's reach`);
    if (listener.name !== "ops" && !dockerfileExposed.has(listener.port)) {
      problems.push(`${where}: its ${listener.name} port ${listener.port} is not one deploy/Dockerfile exposes`);
    }
  }
  if (loaded.app === "migrate") return problems;

  const ops = opsPort(loaded);
  const probes = [
    ["startupProbe", LIVENESS_PATH],
    ["livenessProbe", LIVENESS_PATH],
    ["readinessProbe", READINESS_PATH],
  ] as const;
  for (const [field, expected] of probes) {
    const probe = container[field];
    if (!probe) {
      if (field !== "startupProbe") problems.push(`${where}: no ${field}`);
      continue;
    }
    if (!probe.httpGet) {
      problems.push(`${where}: ${field} is not an HTTP probe of the ops listener`);
      continue;
    }
    const port = resolvePort(container, probe.httpGet.port);
    if (port !== ops)
      problems.push(`${where}: ${field} asks port ${probe.httpGet.port}, the ops listener is on ${ops}`);
    if (probe.httpGet.path !== expected)
      problems.push(`${where}: ${field} asks ${probe.httpGet.path}, not ${expected}`);
  }

  const grace = (pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
  const needed =
    loaded.app === "agent"
      ? loaded.config.drainTimeoutMs + AGENT_EXIT_MARGIN_MS
      : loaded.app === "gateway"
        ? EXIT_AFTER_SIGTERM_MS.gateway + ((loaded.config as { shutdownDelayMs?: number }).shutdownDelayMs ?? 0)
        : EXIT_AFTER_SIGTERM_MS["control-plane"];
  if (grace < needed)
    problems.push(`${where}: ${grace / 1000} s of grace, ${loaded.app} may need ${needed / 1000} s to stop`);
  return problems;
}

const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/;
const UNITS: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
};

/** A Kubernetes quantity of bytes (`2Gi`, `500M`, `1073741824`). */
function bytes(quantity: string | number): number | undefined {
  const match = QUANTITY.exec(String(quantity));
  return match ? Number(match[1]) * (UNITS[match[2] ?? ""] ?? 1) : undefined;
}

/** The gateway's audit spool needs a writable volume on disk, larger than the gateway's own bound on it. */
function spoolProblems({ pod, container, loaded }: AppContainer): string[] {
  if (loaded.app !== "gateway") return [];
  const where = `${pod.name} container ${container.name}`;
  const { dir, maxBytes } = loaded.config.audit.spool;
  const mount = (container.volumeMounts ?? [])
    .filter(({ mountPath }) => dir === mountPath || dir.startsWith(`${mountPath.replace(/\/$/, "")}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const volume = pod.spec.volumes?.find((candidate) => candidate.name === mount?.name);
  if (!mount || mount.readOnly || !volume || (!volume.emptyDir && !volume.persistentVolumeClaim)) {
    return [`${where}: the audit spool ${dir} is in no writable volume (the root filesystem is read-only)`];
  }
  const emptyDir = volume.emptyDir as { medium?: string; sizeLimit?: string } | undefined;
  if (emptyDir?.medium === "Memory") return [`${where}: the audit spool is in memory, lost with the container`];
  const size = emptyDir?.sizeLimit === undefined ? undefined : bytes(emptyDir.sizeLimit);
  if (size !== undefined && size < maxBytes) {
    return [
      `${where}: the spool volume (${emptyDir?.sizeLimit}) is smaller than MODELGATE_AUDIT_SPOOL_MAX_BYTES (${maxBytes})`,
    ];
  }
  return [];
}

const inNamespace = (object: KubeObject, namespace: string) => (object.metadata.namespace ?? "") === namespace;

function serviceProblems(objects: KubeObject[], workloads: Pod[], apps: AppContainer[]): string[] {
  const problems: string[] = [];
  const opsPorts = new Map(apps.map(({ pod, loaded }) => [pod, opsPort(loaded)]));
  for (const service of objects.filter((object) => object.kind === "Service")) {
    const namespace = service.metadata.namespace ?? "";
    const selected = workloads.filter(
      (pod) => pod.namespace === namespace && serviceSelects(service.spec.selector, pod.labels),
    );
    if (selected.length === 0) {
      problems.push(`${describeObject(service)}: selects no pod`);
      continue;
    }
    for (const port of service.spec.ports ?? []) {
      for (const pod of selected) {
        const target = port.targetPort ?? port.port;
        const resolved = pod.spec.containers
          .map((container) => resolvePort(container, target))
          .find((p) => p !== undefined);
        if (resolved === undefined)
          problems.push(
            `${describeObject(service)}: port ${port.name ?? port.port} targets ${target}, which ${pod.name} does not declare`,
          );
        else if (resolved === opsPorts.get(pod))
          problems.push(`${describeObject(service)}: exposes ${pod.name}'s ops port`);
      }
    }
  }
  return problems;
}

function budgetProblems(objects: KubeObject[], workloads: Pod[], apps: AppContainer[]): string[] {
  const problems: string[] = [];
  const budgets = objects.filter((object) => object.kind === "PodDisruptionBudget");
  const autoscalers = objects.filter((object) => object.kind === "HorizontalPodAutoscaler");
  for (const budget of budgets) {
    const owners = workloads.filter(
      (pod) => pod.namespace === (budget.metadata.namespace ?? "") && selects(budget.spec.selector, pod.labels),
    );
    if (owners.length !== 1) problems.push(`${describeObject(budget)}: selects ${owners.length} workloads, not one`);
  }
  for (const autoscaler of autoscalers) {
    const ref = autoscaler.spec.scaleTargetRef;
    const target = objects.find(
      (object) =>
        object.kind === ref.kind &&
        object.metadata.name === ref.name &&
        inNamespace(object, autoscaler.metadata.namespace ?? ""),
    );
    if (!target) problems.push(`${describeObject(autoscaler)}: scales ${ref.kind}/${ref.name}, which is not there`);
  }
  // Gateways scale on load and must survive node drains; the control plane too.
  for (const { pod, loaded } of apps) {
    if (loaded.app !== "gateway" && loaded.app !== "control-plane") continue;
    if (
      !budgets.some(
        (budget) => pod.namespace === (budget.metadata.namespace ?? "") && selects(budget.spec.selector, pod.labels),
      )
    ) {
      problems.push(`${pod.name}: no PodDisruptionBudget`);
    }
    const scaled = autoscalers.some(
      (autoscaler) =>
        autoscaler.spec.scaleTargetRef.name === pod.owner.metadata.name &&
        autoscaler.spec.scaleTargetRef.kind === pod.owner.kind &&
        inNamespace(autoscaler, pod.namespace),
    );
    if (loaded.app === "gateway" && !scaled) problems.push(`${pod.name}: no HorizontalPodAutoscaler`);
  }
  return problems;
}

interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string };
}
interface Rule {
  ports?: { port?: number | string; protocol?: string; endPort?: number }[];
  from?: Peer[];
  to?: Peer[];
}

function policiesFor(objects: KubeObject[], pod: Pod, type: "Ingress" | "Egress"): KubeObject[] {
  return objects.filter((policy) => {
    if (policy.kind !== "NetworkPolicy" || !inNamespace(policy, pod.namespace)) return false;
    const types: string[] = policy.spec.policyTypes ?? (policy.spec.egress ? ["Ingress", "Egress"] : ["Ingress"]);
    return types.includes(type) && selects(policy.spec.podSelector, pod.labels);
  });
}

const namespaceNamed = (selector: LabelSelector | undefined, name: string) =>
  selector?.matchLabels?.["kubernetes.io/metadata.name"] === name;
const narrowPods = (selector: LabelSelector | undefined) =>
  Object.keys(selector?.matchLabels ?? {}).length + (selector?.matchExpressions?.length ?? 0) > 0;
/** Prometheus: named pods in the monitoring namespace, nothing broader. */
const isMonitoring = (peer: Peer) =>
  peer.ipBlock === undefined && namespaceNamed(peer.namespaceSelector, "monitoring") && narrowPods(peer.podSelector);
/** Pods of this namespace that carry `labels`, and no others. */
const onlyPodsLike = (peer: Peer, labels: Labels) =>
  peer.ipBlock === undefined &&
  peer.namespaceSelector === undefined &&
  narrowPods(peer.podSelector) &&
  selects(peer.podSelector, labels);

function rulePorts(rule: Rule, pod: Pod): (number | undefined)[] {
  if (rule.ports === undefined || rule.ports.length === 0) return [undefined];
  return rule.ports.map(({ port }) =>
    typeof port === "string"
      ? allContainers(pod)
          .map((c) => resolvePort(c, port))
          .find((p) => p !== undefined)
      : port,
  );
}

function ingressProblems(objects: KubeObject[], workloads: Pod[], apps: AppContainer[]): string[] {
  const problems: string[] = [];
  for (const pod of workloads) {
    const policies = policiesFor(objects, pod, "Ingress");
    if (policies.length === 0) {
      problems.push(`${pod.name}: no NetworkPolicy limits what reaches it`);
      continue;
    }
    const declared = new Set(allContainers(pod).flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)));
    const own = apps.filter((app) => app.pod === pod);
    const ops = new Set(own.map(({ loaded }) => opsPort(loaded)));
    const gatewayLabels = apps.find(({ loaded }) => loaded.app === "gateway")?.pod.labels;
    const grpc = own.flatMap(({ loaded }) => (loaded.app === "control-plane" ? [loaded.config.grpc.port] : []));
    for (const policy of policies) {
      for (const rule of (policy.spec.ingress ?? []) as Rule[]) {
        for (const port of rulePorts(rule, pod)) {
          const where = `${describeObject(policy)} on ${pod.name}`;
          if (port === undefined) {
            problems.push(`${where}: admits every port`);
            continue;
          }
          if (!declared.has(port)) problems.push(`${where}: admits port ${port}, where nothing of the pod listens`);
          if (ops.has(port) && !(rule.from?.length && rule.from.every(isMonitoring))) {
            problems.push(`${where}: admits the ops port ${port} from others than Prometheus`);
          }
          if (
            grpc.includes(port) &&
            !(gatewayLabels && rule.from?.length && rule.from.every((peer) => onlyPodsLike(peer, gatewayLabels)))
          ) {
            problems.push(`${where}: admits the configuration stream (${port}) from others than gateways`);
          }
        }
      }
    }
  }
  return problems;
}

interface GatewayAddress {
  host: string;
  port: number;
  tls: boolean;
}

/** MODELGATE_GATEWAY_URLS as written: grpc(s)://host:port and dns(+grpc(s)):///name:port. */
function gatewayAddresses(value: string): GatewayAddress[] {
  return value
    .split(",")
    .map((url) => url.trim())
    .filter(Boolean)
    .map((url) => {
      const dns = /^(dns|dns\+grpcs|dns\+grpc):\/\/\/\[?([^\]]+?)\]?:(\d+)$/.exec(url);
      if (dns) return { host: dns[2] ?? "", port: Number(dns[3]), tls: dns[1] !== "dns+grpc" };
      const parsed = new URL(url);
      return { host: parsed.hostname, port: Number(parsed.port), tls: parsed.protocol === "grpcs:" };
    });
}

/** A cluster DNS name (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`) as Service and namespace. */
function serviceName(host: string, clientNamespace: string): { name: string; namespace: string } | undefined {
  const parts = host.replace(/\.svc(\.cluster\.local)?$/, "").split(".");
  if (parts.length > 2) return undefined;
  return { name: parts[0] ?? "", namespace: parts[1] ?? clientNamespace };
}

function egressProblems(objects: KubeObject[], launched: Launched[], apps: AppContainer[]): string[] {
  const problems: string[] = [];
  const gatewayPods = apps.filter(({ loaded }) => loaded.app === "gateway");
  for (const agent of launched.filter(({ app }) => app === "agent")) {
    const { pod, started } = agent;
    const where = pod.name;
    const addresses = gatewayAddresses(started.env.MODELGATE_GATEWAY_URLS ?? "");
    const tunnelPorts = new Set(addresses.map((address) => address.port));
    const runtime = new URL(started.env.MODELGATE_RUNTIME_URL ?? "http://127.0.0.1");
    const runtimePort = Number(runtime.port || (runtime.protocol === "https:" ? 443 : 80));
    const remoteRuntime = !LOOPBACK.test(runtime.hostname);

    const policies = policiesFor(objects, pod, "Egress");
    if (policies.length === 0) problems.push(`${where}: the agent's egress is not limited by any NetworkPolicy`);
    const allowed = { dns: false, tunnel: false, runtime: !remoteRuntime };
    for (const policy of policies) {
      for (const rule of (policy.spec.egress ?? []) as Rule[]) {
        const at = `${describeObject(policy)} on ${where}`;
        if (!rule.to?.length) {
          problems.push(`${at}: lets the agent reach any address`);
          continue;
        }
        for (const port of rulePorts(rule, pod)) {
          if (
            port === 53 &&
            rule.to.every(
              (peer) => namespaceNamed(peer.namespaceSelector, "kube-system") && narrowPods(peer.podSelector),
            )
          ) {
            allowed.dns = true;
          } else if (
            port !== undefined &&
            tunnelPorts.has(port) &&
            rule.to.every((peer) => gatewayPeer(peer, pod, gatewayPods))
          ) {
            allowed.tunnel = true;
          } else if (
            remoteRuntime &&
            port === runtimePort &&
            rule.to.every((peer) => peer.ipBlock !== undefined || narrowPods(peer.podSelector))
          ) {
            allowed.runtime = true;
          } else {
            problems.push(`${at}: lets the agent reach port ${port ?? "any"} of ${JSON.stringify(rule.to)}`);
          }
        }
      }
    }
    if (policies.length > 0) {
      for (const [what, ok] of Object.entries(allowed))
        if (!ok) problems.push(`${where}: its NetworkPolicies leave out the agent's ${what}`);
    }

    // Its runtime accepts nothing but the agent.
    if (remoteRuntime) {
      const guards = objects.filter(
        (policy) =>
          policy.kind === "NetworkPolicy" &&
          inNamespace(policy, pod.namespace) &&
          ((policy.spec.ingress ?? []) as Rule[]).some((rule) => rulePorts(rule, pod).includes(runtimePort)),
      );
      const guarded = guards.filter((policy) =>
        ((policy.spec.ingress ?? []) as Rule[]).every(
          (rule) => rule.from?.length && rule.from.every((peer) => onlyPodsLike(peer, pod.labels)),
        ),
      );
      if (guarded.length === 0)
        problems.push(`${where}: no NetworkPolicy admits only this agent to its runtime (port ${runtimePort})`);
    } else {
      // A runtime beside the agent listens on loopback: nothing in the pod offers it outside.
      for (const container of pod.spec.containers) {
        if (appOf(container) === undefined && (container.ports ?? []).length > 0) {
          problems.push(`${where} container ${container.name}: the runtime declares ports beside its agent`);
        }
      }
    }
  }
  return problems;
}

/** A peer that stands for gateway pods: those of the render, or pods labelled as gateways elsewhere. */
function gatewayPeer(peer: Peer, agentPod: Pod, gateways: AppContainer[]): boolean {
  if (peer.ipBlock !== undefined) return true; // gateways outside the cluster, by address
  if (!narrowPods(peer.podSelector)) return false;
  const local = gateways.filter(({ pod }) =>
    peer.namespaceSelector === undefined
      ? pod.namespace === agentPod.namespace
      : namespaceNamed(peer.namespaceSelector, pod.namespace),
  );
  if (local.length > 0) return local.some(({ pod }) => selects(peer.podSelector, pod.labels));
  return peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "gateway";
}

function wiringProblems(objects: KubeObject[], workloads: Pod[], launched: Launched[], apps: AppContainer[]): string[] {
  const problems: string[] = [];
  const services = objects.filter((object) => object.kind === "Service");
  const target = (host: string, port: number, namespace: string) => {
    const name = serviceName(host, namespace);
    const service = services.find((s) => name && s.metadata.name === name.name && inNamespace(s, name.namespace));
    if (!service) return undefined;
    const servicePort = (service.spec.ports ?? []).find((p: { port: number }) => p.port === port);
    const backends = workloads.filter(
      (pod) =>
        pod.namespace === (service.metadata.namespace ?? "") && serviceSelects(service.spec.selector, pod.labels),
    );
    const ports = backends.flatMap((pod) =>
      pod.spec.containers.map((c) => resolvePort(c, servicePort?.targetPort ?? port)),
    );
    return { service, servicePort, backends, ports };
  };

  for (const { pod, container, app, started } of launched) {
    const where = `${pod.name} container ${container.name}`;
    for (const [name, value] of Object.entries(started.env)) {
      if (name.endsWith("_ALLOW_INSECURE") && value.toLowerCase() === "true")
        problems.push(`${where}: ${name} turns off TLS`);
    }
    if (app === "agent") {
      for (const address of gatewayAddresses(started.env.MODELGATE_GATEWAY_URLS ?? "")) {
        if (!address.tls) problems.push(`${where}: dials ${address.host} without TLS`);
        const found = target(address.host, address.port, pod.namespace);
        if (!found) continue; // gateways deployed elsewhere
        const gateways = apps.filter(
          ({ pod: backend, loaded: app }) => found.backends.includes(backend) && app.app === "gateway",
        );
        if (found.service.spec.clusterIP !== "None") {
          problems.push(`${where}: ${describeObject(found.service)} must be headless, to name every replica`);
        }
        if (
          gateways.length === 0 ||
          !gateways.every(({ loaded: app }) => app.app === "gateway" && found.ports.includes(app.config.tunnelPort))
        ) {
          problems.push(`${where}: ${address.host}:${address.port} does not lead to a gateway's tunnel port`);
        }
      }
    }
  }
  for (const { pod, container, loaded } of apps) {
    const where = `${pod.name} container ${container.name}`;
    if (loaded.app === "gateway") {
      const { target: grpcTarget } = loaded.config.controlPlane;
      if (!grpcTarget.tls) problems.push(`${where}: dials the control plane without TLS`);
      const found = target(grpcTarget.host, Number(grpcTarget.address.split(":").at(-1)), pod.namespace);
      if (found) {
        const planes = apps.filter(
          ({ pod: backend, loaded: app }) => found.backends.includes(backend) && app.app === "control-plane",
        );
        if (
          planes.length === 0 ||
          !planes.every(({ loaded: app }) => app.app === "control-plane" && found.ports.includes(app.config.grpc.port))
        ) {
          problems.push(`${where}: ${grpcTarget.address} does not lead to a control plane's gRPC port`);
        }
      }
    }
  }

  // Migrations run as a Job, with the control plane's database, and not at start.
  for (const plane of apps.filter(({ loaded }) => loaded.app === "control-plane")) {
    if (plane.loaded.app === "control-plane" && plane.loaded.config.migrateOnStart) {
      problems.push(`${plane.pod.name}: migrates at start (MODELGATE_MIGRATE_ON_START=false; the migrate Job does it)`);
    }
    const database = JSON.stringify(
      plane.container.env?.find((v) => v.name === "DATABASE_URL")?.valueFrom?.secretKeyRef,
    );
    const jobs = apps.filter(
      ({ pod, container, loaded }) =>
        loaded.app === "migrate" &&
        pod.owner.kind === "Job" &&
        pod.namespace === plane.pod.namespace &&
        JSON.stringify(container.env?.find((v) => v.name === "DATABASE_URL")?.valueFrom?.secretKeyRef) === database,
    );
    if (jobs.length !== 1) problems.push(`${plane.pod.name}: ${jobs.length} migration Jobs for its database, not one`);
  }
  return problems;
}

/** Every problem of a rendered kustomization; empty when it is sound. */
export function checkManifests(objects: KubeObject[], options: CheckOptions): string[] {
  const problems = schemaProblems(objects);
  const workloads = pods(objects);
  const scratch = mkdtempSync(path.join(tmpdir(), "mg-k8s-"));
  const launched: Launched[] = [];
  const apps: AppContainer[] = [];
  try {
    for (const pod of workloads) {
      problems.push(...securityProblems(pod));
      if (options.pinnedImage) problems.push(...releaseProblems(pod));
      for (const container of allContainers(pod)) {
        if (appOf(container) === undefined) continue;
        problems.push(...imageProblems(pod, container, options));
        const app = appOf(container);
        if (app === "unknown" || app === undefined || app === "runtime-fixture") continue;
        const names = (container.env ?? []).map((variable) => variable.name);
        for (const name of unknownVariables(app, names)) {
          problems.push(`${pod.name} container ${container.name}: sets ${name}, which ${app} does not read`);
        }
        const started = start(pod, container, options.catalog, scratch);
        problems.push(...started.problems);
        launched.push({ pod, container, app, started });
        if (started.loaded) apps.push({ pod, container, app, started, loaded: started.loaded });
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const exposed = dockerfileFacts(options.dockerfile).exposed;
  for (const app of apps) problems.push(...listenerProblems(app, exposed), ...spoolProblems(app));
  problems.push(...serviceProblems(objects, workloads, apps));
  problems.push(...budgetProblems(objects, workloads, apps));
  problems.push(...ingressProblems(objects, workloads, apps));
  problems.push(...egressProblems(objects, launched, apps));
  problems.push(...wiringProblems(objects, workloads, launched, apps));
  return problems;
}
