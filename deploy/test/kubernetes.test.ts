// deploy/kubernetes, rendered by kubectl as an operator would render it, and
// held to the Kubernetes schemas and to the code (checks in ./kubernetes/):
// each app's configuration loader accepts what its container gets, probes
// and ports are the ones the app listens on, the image runs as the
// Dockerfile built it, and the NetworkPolicies fence what they should. The
// second half breaks a rendered overlay in one place at a time and expects
// the check to say so, so a clean result means something.
import path from "node:path";
import { readText, secretCatalog } from "./kubernetes/app-config.js";
import { type CheckOptions, checkManifests } from "./kubernetes/checks.js";
import { type KubeObject, kustomizeVersion, render } from "./kubernetes/render.js";
import { type Container, type Pod, pods } from "./kubernetes/workloads.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const KUBERNETES = path.join(ROOT, "deploy/kubernetes");
const README = readText(path.join(KUBERNETES, "README.md"));
const DOCKERFILE = readText(path.join(ROOT, "deploy/Dockerfile"));

/** Every kustomization in deploy/kubernetes; overlays deploy a release, so their image names one. */
const FOLDERS = [
  { dir: "base", pinnedImage: false },
  { dir: "overlays/example", pinnedImage: true },
  { dir: "overlays/standalone-agent", pinnedImage: true },
  { dir: "overlays/cert-manager", pinnedImage: true },
];

const kubectl = kustomizeVersion();
if ("missing" in kubectl) {
  // CI installs kubectl (.ci/run); a machine without it skips, saying why.
  console.warn(`deploy/kubernetes is not rendered: ${kubectl.missing}`);
}
const whenKubectl = "missing" in kubectl ? describe.skip : describe;

/** Each folder rendered once; every test gets its own copy to change. */
const renders = new Map<string, KubeObject[]>();
function rendered(dir: string): KubeObject[] {
  let objects = renders.get(dir);
  if (!objects) {
    objects = render(path.join(KUBERNETES, dir));
    renders.set(dir, objects);
  }
  return structuredClone(objects);
}

const options = (objects: KubeObject[], pinnedImage: boolean): CheckOptions => ({
  catalog: secretCatalog(README, objects),
  dockerfile: DOCKERFILE,
  pinnedImage,
});

const podOf = (objects: KubeObject[], name: string): Pod => {
  const pod = pods(objects).find((candidate) => candidate.owner.metadata.name === name);
  if (!pod) throw new Error(`no workload ${name}`);
  return pod;
};
const containerOf = (objects: KubeObject[], workload: string, name: string): Container => {
  const container = podOf(objects, workload).spec.containers.find((candidate) => candidate.name === name);
  if (!container) throw new Error(`no container ${name} in ${workload}`);
  return container;
};
const objectOf = (objects: KubeObject[], kind: string, name: string): KubeObject => {
  const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
  if (!object) throw new Error(`no ${kind} ${name}`);
  return object;
};
const setEnv = (container: Container, name: string, value: string | undefined) => {
  const env = (container.env ?? []).filter((variable) => variable.name !== name);
  container.env = value === undefined ? env : [...env, { name, value }];
};

whenKubectl(`deploy/kubernetes (${"version" in kubectl ? `kustomize ${kubectl.version}` : "skipped"})`, () => {
  it.each(FOLDERS)("$dir renders, validates against the schemas and agrees with the code", ({ dir, pinnedImage }) => {
    const objects = rendered(dir);
    expect(objects.length).toBeGreaterThan(0);
    expect(checkManifests(objects, options(objects, pinnedImage))).toEqual([]);
  });

  it("deploys what the overlays promise", () => {
    const kinds = (objects: KubeObject[]) => objects.map((object) => `${object.kind}/${object.metadata.name}`).sort();
    const base = rendered("base");
    expect(kinds(base)).toEqual(
      [
        "Deployment/control-plane",
        "Service/control-plane",
        "PodDisruptionBudget/control-plane",
        "NetworkPolicy/control-plane",
        "Job/migrate",
        "NetworkPolicy/migrate",
        "Deployment/gateway",
        "Service/gateway",
        "Service/gateway-tunnel",
        "HorizontalPodAutoscaler/gateway",
        "PodDisruptionBudget/gateway",
        "NetworkPolicy/gateway",
      ].sort(),
    );
    // Nothing in the repository holds a secret: the Secrets are created beside it.
    expect(base.some((object) => object.kind === "Secret")).toBe(false);

    // The example: the base in its namespace, and an agent beside vLLM in one pod.
    const example = rendered("overlays/example");
    expect(new Set(example.filter((o) => o.kind !== "Namespace").map((o) => o.metadata.namespace))).toEqual(
      new Set(["modelgate"]),
    );
    expect(podOf(example, "vllm").spec.containers.map((container) => container.name)).toEqual(["vllm", "agent"]);

    // The standalone agent: one Deployment of the agent, and the policies around it and its runtime.
    const standalone = rendered("overlays/standalone-agent");
    expect(pods(standalone).map((pod) => pod.spec.containers.map((container) => container.args))).toEqual([
      [["agent"]],
    ]);

    // cert-manager issues every TLS Secret the example mounts.
    const issued = rendered("overlays/cert-manager")
      .filter((object) => object.kind === "Certificate")
      .map((object) => object.spec.secretName);
    expect(issued).toEqual(
      expect.arrayContaining(["modelgate-tunnel-tls", "modelgate-control-plane-tls", "modelgate-agent-vllm-tls"]),
    );
  });

  describe("finds what is wrong", () => {
    // Each case breaks the rendered example (or the standalone agent) in one place.
    const cases: { name: string; dir?: string; breakIt: (objects: KubeObject[]) => void; expected: string }[] = [
      {
        name: "a misspelt variable",
        breakIt: (o) => setEnv(containerOf(o, "gateway", "gateway"), "MODELGATE_GATEWAY_PROT", "8080"),
        expected: "sets MODELGATE_GATEWAY_PROT, which gateway does not read",
      },
      {
        name: "a variable of another app",
        breakIt: (o) => setEnv(containerOf(o, "vllm", "agent"), "MODELGATE_REDIS_URL", "redis://redis:6379"),
        expected: "sets MODELGATE_REDIS_URL, which agent does not read",
      },
      {
        name: "a configuration the app refuses (plaintext tunnel off loopback)",
        breakIt: (o) => {
          const gateway = containerOf(o, "gateway", "gateway");
          setEnv(gateway, "MODELGATE_TUNNEL_TLS_CERT_FILE", undefined);
          setEnv(gateway, "MODELGATE_TUNNEL_TLS_KEY_FILE", undefined);
        },
        expected: "gateway refuses its configuration: MODELGATE_TUNNEL_HOST: plaintext gRPC",
      },
      {
        name: "TLS turned off",
        breakIt: (o) => setEnv(containerOf(o, "gateway", "gateway"), "MODELGATE_TUNNEL_ALLOW_INSECURE", "true"),
        expected: "MODELGATE_TUNNEL_ALLOW_INSECURE turns off TLS",
      },
      {
        name: "a token file in no volume",
        breakIt: (o) => setEnv(containerOf(o, "gateway", "gateway"), "MODELGATE_GATEWAY_TOKEN_FILE", "/run/token"),
        expected: "MODELGATE_GATEWAY_TOKEN_FILE=/run/token is in no volume the container mounts",
      },
      {
        name: "a Secret key nobody is told to create",
        breakIt: (o) => {
          const variable = containerOf(o, "control-plane", "control-plane").env?.find((v) => v.name === "DATABASE_URL");
          if (variable?.valueFrom?.secretKeyRef) variable.valueFrom.secretKeyRef.key = "url";
        },
        expected: "DATABASE_URL reads modelgate-database/url, which is not documented",
      },
      {
        name: "the ops listener on loopback (the default), out of the kubelet's reach",
        breakIt: (o) =>
          setEnv(containerOf(o, "control-plane", "control-plane"), "MODELGATE_CONTROL_PLANE_OPS_HOST", undefined),
        expected: "its ops listener binds 127.0.0.1, out of the pod's reach",
      },
      {
        name: "a probe on the wrong port",
        breakIt: (o) => {
          const probe = containerOf(o, "gateway", "gateway").readinessProbe;
          if (probe?.httpGet) probe.httpGet.port = "http";
        },
        expected: "readinessProbe asks port http, the ops listener is on 9080",
      },
      {
        name: "a probe on a path the ops listener does not serve",
        breakIt: (o) => {
          const probe = containerOf(o, "control-plane", "control-plane").livenessProbe;
          if (probe?.httpGet) probe.httpGet.path = "/healthz";
        },
        expected: "livenessProbe asks /healthz, not /livez",
      },
      {
        name: "a declared port the app does not listen on",
        breakIt: (o) => containerOf(o, "gateway", "gateway").ports?.push({ name: "extra", containerPort: 9999 }),
        expected: "declares port 9999, where gateway does not listen",
      },
      {
        name: "a writable root filesystem",
        breakIt: (o) => {
          const context = containerOf(o, "vllm", "vllm").securityContext;
          if (context) context.readOnlyRootFilesystem = false;
        },
        expected: "container vllm: root filesystem is writable",
      },
      {
        name: "capabilities kept",
        breakIt: (o) => {
          const context = containerOf(o, "control-plane", "control-plane").securityContext;
          if (context) context.capabilities = { drop: ["NET_RAW"] };
        },
        expected: "keeps capabilities (drop ALL)",
      },
      {
        name: "no memory limit",
        breakIt: (o) => {
          const resources = containerOf(o, "gateway", "gateway").resources;
          if (resources) resources.limits = {};
        },
        expected: "container gateway: no limits.memory",
      },
      {
        name: "a field the schema does not know (a misspelt securityContext setting)",
        breakIt: (o) => {
          const context = containerOf(o, "gateway", "gateway").securityContext as Record<string, unknown>;
          context.readOnlyRootFileSystem = true;
        },
        expected: "unknown field /spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem",
      },
      {
        name: "a value of the wrong type",
        breakIt: (o) => {
          objectOf(o, "HorizontalPodAutoscaler", "gateway").spec.maxReplicas = "ten";
        },
        expected: "data/spec/maxReplicas must be integer",
      },
      {
        name: "the entrypoint replaced",
        breakIt: (o) => {
          containerOf(o, "gateway", "gateway").command = ["node", "/app/apps/gateway/dist/main.js"];
        },
        expected: "replaces the image's entrypoint",
      },
      {
        name: "an app the image does not have",
        breakIt: (o) => {
          containerOf(o, "gateway", "gateway").args = ["gateways"];
        },
        expected: 'args ["gateways"] must be one app of the image',
      },
      {
        name: "another user than the image's",
        breakIt: (o) => {
          const context = podOf(o, "gateway").spec.securityContext;
          if (context) context.runAsUser = 1000;
        },
        expected: "runs as 1000, the image's files belong to 10001",
      },
      {
        name: "an image without a release",
        breakIt: (o) => {
          containerOf(o, "gateway", "gateway").image = "registry.example.com/modelgate";
        },
        expected: "names no release",
      },
      {
        name: "the ops port in a Service",
        breakIt: (o) =>
          objectOf(o, "Service", "gateway").spec.ports.push({ name: "ops", port: 9080, targetPort: "ops" }),
        expected: "Service/modelgate/gateway: exposes Deployment/modelgate/gateway's ops port",
      },
      {
        name: "a Service whose selector matches nothing",
        breakIt: (o) => {
          objectOf(o, "Service", "control-plane").spec.selector["app.kubernetes.io/component"] = "controlplane";
        },
        expected: "Service/modelgate/control-plane: selects no pod",
      },
      {
        name: "a tunnel Service that is not headless",
        breakIt: (o) => {
          objectOf(o, "Service", "gateway-tunnel").spec.clusterIP = undefined;
        },
        expected: "must be headless, to name every replica",
      },
      {
        name: "agents pointed at the clients' port",
        breakIt: (o) =>
          setEnv(
            containerOf(o, "vllm", "agent"),
            "MODELGATE_GATEWAY_URLS",
            "grpcs://gateway.modelgate.svc.cluster.local:8080",
          ),
        expected: "gateway.modelgate.svc.cluster.local:8080 does not lead to a gateway's tunnel port",
      },
      {
        name: "a budget for no workload",
        breakIt: (o) => {
          objectOf(o, "PodDisruptionBudget", "gateway").spec.selector.matchLabels["app.kubernetes.io/component"] = "gw";
        },
        expected: "PodDisruptionBudget/modelgate/gateway: selects 0 workloads, not one",
      },
      {
        name: "an autoscaler for a Deployment that is not there",
        breakIt: (o) => {
          objectOf(o, "HorizontalPodAutoscaler", "gateway").spec.scaleTargetRef.name = "gateways";
        },
        expected: "scales Deployment/gateways, which is not there",
      },
      {
        name: "the ops port open to everyone",
        breakIt: (o) => {
          const rule = objectOf(o, "NetworkPolicy", "gateway").spec.ingress.find(
            (r: { ports: { port: number }[] }) => r.ports[0]?.port === 9080,
          );
          rule.from = undefined;
        },
        expected: "admits the ops port 9080 from others than Prometheus",
      },
      {
        name: "the configuration stream open to everyone",
        breakIt: (o) => {
          const rule = objectOf(o, "NetworkPolicy", "control-plane").spec.ingress.find(
            (r: { ports: { port: number }[] }) => r.ports[0]?.port === 8082,
          );
          rule.from = [{ namespaceSelector: {} }];
        },
        expected: "admits the configuration stream (8082) from others than gateways",
      },
      {
        name: "a pod no NetworkPolicy selects",
        breakIt: (o) => o.splice(o.indexOf(objectOf(o, "NetworkPolicy", "migrate")), 1),
        expected: "Job/modelgate/migrate: no NetworkPolicy limits what reaches it",
      },
      {
        name: "an agent free to reach anything",
        breakIt: (o) => objectOf(o, "NetworkPolicy", "vllm").spec.egress.push({ ports: [{ port: 443 }] }),
        expected: "lets the agent reach any address",
      },
      {
        name: "an agent allowed to another port",
        breakIt: (o) =>
          objectOf(o, "NetworkPolicy", "vllm").spec.egress.push({
            ports: [{ port: 5432 }],
            to: [{ ipBlock: { cidr: "10.0.0.0/8" } }],
          }),
        expected: "lets the agent reach port 5432",
      },
      {
        name: "a sidecar runtime offering its port",
        breakIt: (o) => {
          containerOf(o, "vllm", "vllm").ports = [{ name: "http", containerPort: 8000 }];
        },
        expected: "container vllm: the runtime declares ports beside its agent",
      },
      {
        name: "a runtime that admits more than its agent",
        dir: "overlays/standalone-agent",
        breakIt: (o) =>
          objectOf(o, "NetworkPolicy", "vllm-from-modelgate-agent").spec.ingress.push({ ports: [{ port: 8000 }] }),
        expected: "no NetworkPolicy admits only this agent to its runtime (port 8000)",
      },
      {
        name: "an agent whose egress leaves out its runtime",
        dir: "overlays/standalone-agent",
        breakIt: (o) => objectOf(o, "NetworkPolicy", "modelgate-agent").spec.egress.pop(),
        expected: "its NetworkPolicies leave out the agent's runtime",
      },
      {
        name: "the audit spool on the read-only root filesystem",
        breakIt: (o) => {
          const gateway = containerOf(o, "gateway", "gateway");
          gateway.volumeMounts = gateway.volumeMounts?.filter((mount) => mount.name !== "spool");
        },
        expected: "the audit spool /var/lib/modelgate/audit-spool is in no writable volume",
      },
      {
        name: "a spool volume smaller than the gateway's bound on the spool",
        breakIt: (o) => {
          const volume = podOf(o, "gateway").spec.volumes?.find((candidate) => candidate.name === "spool");
          if (volume) volume.emptyDir = { sizeLimit: "512Mi" };
        },
        expected: "the spool volume (512Mi) is smaller than MODELGATE_AUDIT_SPOOL_MAX_BYTES (1073741824)",
      },
      {
        name: "migrations at start",
        breakIt: (o) => setEnv(containerOf(o, "control-plane", "control-plane"), "MODELGATE_MIGRATE_ON_START", "true"),
        expected: "migrates at start",
      },
      {
        name: "no migration Job",
        breakIt: (o) => o.splice(o.indexOf(objectOf(o, "Job", "migrate")), 1),
        expected: "0 migration Jobs for its database, not one",
      },
      {
        name: "too little time to drain",
        breakIt: (o) => {
          podOf(o, "gateway").spec.terminationGracePeriodSeconds = 10;
        },
        expected: "10 s of grace, gateway may need",
      },
    ];

    it.each(cases)("$name", ({ dir = "overlays/example", breakIt, expected }) => {
      const objects = rendered(dir);
      breakIt(objects);
      const problems = checkManifests(objects, options(objects, true));
      expect(problems).toContainEqual(expect.stringContaining(expected));
    });
  });
});
