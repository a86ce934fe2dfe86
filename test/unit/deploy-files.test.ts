/**
 * deploy/ cannot be run here (no container engine, no cluster), so its invariants are checked
 * statically: every YAML file parses, the gateway configs pass the real config loader, and the
 * Dockerfile, compose file and Kubernetes manifests keep the properties docs/scaling.md relies on.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { interpolateEnv, parseConfigText, validateConfig, type ConfigProblem } from '../../src/config/load-config.js';
import { configSchema } from '../../src/config/schema.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const deployDir = join(root, 'deploy');
const read = (p: string) => readFileSync(join(root, p), 'utf8');

/** Every file under `dir`, recursively, relative to the repository root. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [relative(root, join(dir, e.name))],
  );
}

const yamlFiles = files(deployDir).filter((f) => /\.ya?ml$/.test(f));
const DEFAULT_GRACE_MS = configSchema.parse({}).shutdown.graceMs;

type Obj = Record<string, any>;

/** The Kubernetes objects of deploy/kubernetes/, by kind. */
function k8s(kind: string): Obj {
  const objects = yamlFiles
    .filter((f) => f.startsWith('deploy/kubernetes/'))
    .flatMap((f) => parseAllDocuments(read(f)).map((d) => d.toJS() as Obj))
    .filter((o) => o?.kind === kind);
  expect(objects, kind).toHaveLength(1);
  return objects[0]!;
}

/** `${VAR}` names used in the string values of a YAML text (comments aside). */
function envRefs(text: string): Set<string> {
  const refs = new Set<string>();
  const walk = (v: unknown): void => {
    if (typeof v === 'string') for (const m of v.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)) refs.add(m[1]!);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(parseYaml(text));
  return refs;
}

/** Runs a config text through the loader with every referenced variable set to a sample value. */
function checkGatewayConfig(text: string): { problems: ConfigProblem[]; config: ReturnType<typeof validateConfig>['config'] } {
  const env: NodeJS.ProcessEnv = {
    MAXROUTER_SECRET: 'x'.repeat(64),
    DATABASE_URL: 'postgres://maxrouter:pw@postgres:5432/maxrouter',
    REDIS_URL: 'redis://redis:6379',
    OPENAI_API_KEY: 'sk-test',
    ANTHROPIC_API_KEY: 'sk-ant-test',
    GEMINI_API_KEY: 'gm-test',
  };
  const { raw, problems } = parseConfigText(text);
  if (problems.length) return { problems, config: undefined };
  const envProblems: ConfigProblem[] = [];
  const validated = validateConfig(interpolateEnv(raw, env, envProblems));
  return { problems: [...envProblems, ...validated.problems], config: validated.config };
}

/** Seconds of a `Ns` / `NmNs` duration (compose's format). */
function seconds(duration: string): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration);
  expect(m, duration).toBeTruthy();
  return Number(m![1] ?? 0) * 60 + Number(m![2] ?? 0);
}

describe('deploy/', () => {
  it('has YAML files that all parse', () => {
    expect(yamlFiles.length).toBeGreaterThanOrEqual(7);
    for (const f of yamlFiles) {
      for (const doc of parseAllDocuments(read(f))) {
        expect(doc.errors.map((e) => `${f}: ${e.message}`)).toEqual([]);
      }
    }
  });

  describe('Dockerfile', () => {
    const text = read('deploy/Dockerfile');
    // Continuation lines joined, comments dropped: one instruction per line.
    const instructions = text
      .replace(/\\\n/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const stages: string[][] = [];
    for (const i of instructions) {
      if (/^FROM\s/i.test(i)) stages.push([i]);
      else stages.at(-1)?.push(i);
    }
    const runtime = stages.at(-1)!;

    it('needs no image but its base to build: no `# syntax=` directive, which makes BuildKit fetch a frontend from Docker Hub first', () => {
      expect(text).not.toMatch(/^#\s*syntax\s*=/im);
    });

    it('builds in one stage and runs from a slim Node 20 image in another', () => {
      expect(stages.length).toBeGreaterThanOrEqual(2);
      expect(text).toMatch(/^ARG NODE_IMAGE=node:20-(bookworm-)?slim$/m);
      expect(stages[0]!.join('\n')).toMatch(/npm ci\b/);
      expect(stages[0]!.join('\n')).toMatch(/npm run build/);
      expect(runtime.join('\n')).toMatch(/npm ci --omit=dev/);
      expect(runtime.join('\n')).toMatch(/npm rebuild better-sqlite3/);
      expect(runtime.join('\n')).toMatch(/COPY --from=build \/app\/dist/);
    });

    it('runs as a non-root user, exposes 8787, checks /healthz and stops with SIGTERM', () => {
      const user = runtime.filter((i) => /^USER\s/i.test(i)).at(-1);
      expect(user).toBeDefined();
      const name = user!.split(/\s+/)[1]!.split(':')[0]!;
      expect(['root', '0']).not.toContain(name);
      expect(runtime).toContain('EXPOSE 8787');
      expect(runtime).toContain('STOPSIGNAL SIGTERM');
      const healthcheck = runtime.find((i) => i.startsWith('HEALTHCHECK'))!;
      const probe = JSON.parse(healthcheck.slice(healthcheck.indexOf(' CMD ') + 5)) as string[];
      expect(probe.slice(0, 2)).toEqual(['node', '-e']);
      expect(probe[2]).toContain('http://127.0.0.1:8787/healthz');
      expect(() => new Function(probe[2]!)).not.toThrow(); // the probe script is valid JavaScript
      const cmd = runtime.filter((i) => i.startsWith('CMD ')).at(-1)!;
      expect(JSON.parse(cmd.slice(4))).toEqual(['node', 'bin/maxrouter.js', 'serve', '--config', '/etc/maxrouter/config.yaml']);
    });

    it('has a .dockerignore keeping local and generated files out of the build context', () => {
      const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
      for (const p of ['node_modules', 'dist', 'data', '.git', 'coverage']) expect(ignored).toContain(p);
    });
  });

  describe('compose.yaml', () => {
    const compose = parseYaml(read('deploy/compose.yaml')) as Obj;
    const services = compose.services as Obj;

    it('runs two gateway replicas built from the Dockerfile, PostgreSQL 16, Redis 7 and a load balancer', () => {
      expect(Object.keys(services).sort()).toEqual(['gateway', 'lb', 'postgres', 'redis']);
      expect(services.postgres.image).toMatch(/^postgres:16\b/);
      expect(services.redis.image).toMatch(/^redis:7\b/);
      expect(services.gateway.deploy.replicas).toBe(2);
      expect(services.gateway.build).toEqual({ context: '..', dockerfile: 'deploy/Dockerfile' });
      expect(services.lb.image).toMatch(/^haproxy:/);
      for (const s of ['postgres', 'redis', 'lb']) expect(services[s].healthcheck?.test, s).toBeDefined();
      expect(services.gateway.depends_on).toMatchObject({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
      // Only the load balancer is reachable from outside.
      expect(services.lb.ports).toHaveLength(1);
      for (const s of ['gateway', 'postgres', 'redis']) expect(services[s].ports, s).toBeUndefined();
    });

    it('gives the gateways one mounted config, secrets from the environment, and time to drain', () => {
      const gw = services.gateway;
      expect(gw.volumes).toContain('./config.compose.yaml:/etc/maxrouter/config.yaml:ro');
      const env = gw.environment as Obj;
      for (const v of envRefs(read('deploy/config.compose.yaml'))) expect(Object.keys(env), v).toContain(v);
      // Secrets are interpolated from deploy/.env, never written here.
      for (const k of ['MAXROUTER_SECRET', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'GEMINI_API_KEY']) expect(env[k], k).toMatch(/^\$\{/);
      expect(env.DATABASE_URL).toContain('${POSTGRES_PASSWORD');
      expect(services.postgres.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD/);
      expect(gw.stop_signal).toBe('SIGTERM');
      expect(seconds(gw.stop_grace_period) * 1000).toBeGreaterThan(DEFAULT_GRACE_MS);
      const example = read('deploy/.env.example');
      for (const v of ['MAXROUTER_SECRET', 'POSTGRES_PASSWORD', 'OPENAI_API_KEY']) expect(example).toMatch(new RegExp(`^${v}=$`, 'm'));
    });

    it('has a load balancer that health-checks /healthz on every gateway replica and does not cut streams', () => {
      expect(services.lb.volumes).toContain('./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
      const cfg = read('deploy/haproxy.cfg');
      expect(cfg).toMatch(/http-check send meth GET uri \/healthz/);
      expect(cfg).toMatch(/server-template \S+ \d+ gateway:8787/);
      expect(cfg).toMatch(/default-server check\b/);
      const serverTimeout = /timeout server (\d+)s/.exec(cfg);
      expect(Number(serverTimeout?.[1])).toBeGreaterThan(300); // the gateway's upstream timeouts
    });

    it('has a gateway config that the config loader accepts, with Redis and PostgreSQL', () => {
      const text = read('deploy/config.compose.yaml');
      const { problems, config } = checkGatewayConfig(text);
      expect(problems).toEqual([]);
      expect(config!.listen).toEqual({ host: '0.0.0.0', port: 8787 });
      expect(config!.database).toMatch(/^postgres:\/\//);
      expect(config!.redis).toBe('redis://redis:6379');
      expect(config!.shutdown.graceMs).toBeLessThan(seconds(services.gateway.stop_grace_period) * 1000);
      expect(parseYaml(text)).toMatchObject({ secret: '${MAXROUTER_SECRET}', database: '${DATABASE_URL}', redis: '${REDIS_URL}' });
    });
  });

  describe('kubernetes/', () => {
    const deployment = k8s('Deployment');
    const pod = deployment.spec.template.spec as Obj;
    const container = pod.containers[0] as Obj;
    const configMap = k8s('ConfigMap');
    const secret = k8s('Secret');

    it('runs 2 replicas with readiness on /healthz, a liveness probe and a grace period longer than the drain', () => {
      expect(deployment.apiVersion).toBe('apps/v1');
      expect(deployment.spec.replicas).toBe(2);
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      expect(container.readinessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
      expect(container.livenessProbe).toBeDefined();
      const preStopSeconds = Number(container.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
      const { config } = checkGatewayConfig(configMap.data['config.yaml']);
      for (const graceMs of [DEFAULT_GRACE_MS, config!.shutdown.graceMs]) {
        expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopSeconds * 1000 + graceMs);
      }
    });

    it('is non-root, with resources, config from the ConfigMap as a file and secrets from the Secret as env', () => {
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
      expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(container.resources.limits).toMatchObject({ memory: expect.any(String) });
      expect(container.ports).toContainEqual(expect.objectContaining({ name: 'http', containerPort: 8787 }));

      const configVolume = pod.volumes.find((v: Obj) => v.configMap);
      expect(configVolume.configMap.name).toBe(configMap.metadata.name);
      expect(container.volumeMounts).toContainEqual(expect.objectContaining({ name: configVolume.name, mountPath: '/etc/maxrouter' }));
      expect(Object.keys(configMap.data)).toEqual(['config.yaml']);
      expect(container.args.slice(-2)).toEqual(['--config', '/etc/maxrouter/config.yaml']);

      expect(container.envFrom).toEqual([{ secretRef: { name: secret.metadata.name } }]);
      for (const v of envRefs(configMap.data['config.yaml'])) expect(Object.keys(secret.stringData), v).toContain(v);
    });

    it('has a Secret of clearly marked placeholders, and a server-secret placeholder the gateway refuses', () => {
      for (const [k, v] of Object.entries(secret.stringData as Record<string, string>)) expect(v, k).toContain('REPLACE_ME');
      expect(read('deploy/kubernetes/secret.yaml')).toMatch(/PLACEHOLDERS/);
      expect(secret.stringData.MAXROUTER_SECRET.length).toBeLessThan(32);
    });

    it('has a gateway config (ConfigMap) that the config loader accepts', () => {
      const { problems, config } = checkGatewayConfig(configMap.data['config.yaml']);
      expect(problems).toEqual([]);
      expect(config!.listen).toEqual({ host: '0.0.0.0', port: 8787 });
      expect(config!.redis).toBe('redis://redis:6379');
    });

    it('has a Service and an autoscaling/v2 CPU autoscaler pointing at the Deployment', () => {
      const service = k8s('Service');
      expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
      expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
      expect(service.spec.ports[0].targetPort).toBe('http');

      const hpa = k8s('HorizontalPodAutoscaler');
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
      expect(hpa.spec.metrics).toContainEqual({ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: expect.any(Number) } } });
    });
  });
});
