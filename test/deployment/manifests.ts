import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** The parts of the Kubernetes objects in deploy/kubernetes/ that the tests read. */

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface Probe {
  httpGet?: { path: string; port: number | string };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}

export interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string } }[];
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    // Service
    clusterIP?: string;
    publishNotReadyAddresses?: boolean;
    selector?: Record<string, string> | { matchLabels: Record<string, string> };
    ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[];
    // StatefulSet
    serviceName?: string;
    replicas?: number;
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
    // PodDisruptionBudget
    maxUnavailable?: number | string;
    minAvailable?: number | string;
  };
  stringData?: Record<string, string>;
  data?: Record<string, string>;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

export const KUBERNETES_DIR = join(import.meta.dirname, '..', '..', 'deploy', 'kubernetes');

/** Every object of every .yaml file in deploy/kubernetes/, with the file it came from. */
export function readManifests(): { file: string; object: KubeObject }[] {
  return readdirSync(KUBERNETES_DIR)
    .filter((file) => file.endsWith('.yaml'))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(KUBERNETES_DIR, file), 'utf8')).map((doc) => {
        if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
        return { file, object: doc.toJS() as KubeObject };
      }),
    );
}

/** The one object of this kind (and name, if given); throws naming what is missing. */
export function only(objects: { object: KubeObject }[], kind: string, name?: string): KubeObject {
  const found = objects.map((o) => o.object).filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name === undefined ? '' : ` ${name}`}, found ${found.length}`);
  return found[0]!;
}

/** Kubernetes' $(VAR) expansion of a container's args from its env ($$ escapes; unknown names stay as written). */
export function expandArgs(args: readonly string[], env: Record<string, string>): string[] {
  return args.map((arg) => arg.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string | undefined) => (name === undefined ? '$' : (env[name] ?? all))));
}

/** "--flag=value" and "--flag value" arguments as flag → value ('' for a flag without one). */
export function flagsOf(args: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('--')) flags.set(arg.slice(2), args[++i]!);
    else flags.set(arg.slice(2), '');
  }
  return flags;
}
