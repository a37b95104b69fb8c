/**
 * An npm registry on loopback that knows only what this repository's lockfile knows, for installing
 * the packed packages the way a user would (`npm install <package>`: npm resolves every dependency
 * range against registry metadata) without the network. `npm ci` fills the npm cache with tarballs
 * but not with registry metadata, so `npm install --offline` alone cannot resolve anything; this
 * serves that metadata (every version the lockfile holds, with its integrity) and nothing else.
 *
 * Tarball URLs point back here and are answered 404 and counted: npm reads a tarball whose
 * integrity it knows from its cache, so a request means something would have been downloaded.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

interface LockEntry {
  readonly version?: string;
  readonly resolved?: string;
  readonly integrity?: string;
  readonly link?: boolean;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly peerDependenciesMeta?: Record<string, unknown>;
  readonly bin?: Record<string, string> | string;
  readonly engines?: Record<string, string>;
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
  readonly hasInstallScript?: boolean;
}

export interface OfflineRegistry {
  readonly url: string;
  /** Tarball requests seen (each one a download a real registry would have served). */
  readonly tarballRequests: readonly string[];
  close(): Promise<void>;
}

/** Package name of a lockfile path such as `node_modules/a/node_modules/@s/b`. */
function nameOf(lockPath: string): string {
  return lockPath.slice(lockPath.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

/** Starts the registry for `lockfile` (a package-lock.json, version 3). */
export async function startOfflineRegistry(lockfile: string): Promise<OfflineRegistry> {
  const lock = JSON.parse(readFileSync(lockfile, 'utf8')) as { packages: Record<string, LockEntry> };
  const versions = new Map<string, Map<string, LockEntry>>();
  for (const [lockPath, entry] of Object.entries(lock.packages)) {
    if (!lockPath.includes('node_modules/') || entry.link === true) continue;
    if (entry.version === undefined || entry.integrity === undefined) continue;
    const name = nameOf(lockPath);
    if (!versions.has(name)) versions.set(name, new Map());
    versions.get(name)!.set(entry.version, entry);
  }
  const tarballRequests: string[] = [];
  let base = '';

  function packument(name: string): unknown {
    const known = versions.get(name)!;
    const list = [...known.keys()];
    const body: Record<string, unknown> = {};
    for (const [version, entry] of known) {
      body[version] = {
        name,
        version,
        dependencies: entry.dependencies ?? {},
        optionalDependencies: entry.optionalDependencies,
        peerDependencies: entry.peerDependencies,
        peerDependenciesMeta: entry.peerDependenciesMeta,
        bin: entry.bin,
        engines: entry.engines,
        os: entry.os,
        cpu: entry.cpu,
        hasInstallScript: entry.hasInstallScript,
        dist: { tarball: `${base}/-/tarball/${name}/${version}.tgz`, integrity: entry.integrity },
      };
    }
    // The newest listed is "latest"; every range we pin or our dependencies ask is one of these.
    const latest = list.sort((a, b) => compareVersions(a, b)).at(-1)!;
    return { name, 'dist-tags': { latest }, versions: body };
  }

  const server = createServer((request, response) => {
    const url = decodeURIComponent((request.url ?? '/').split('?')[0]!).slice(1);
    if (url.startsWith('-/tarball/')) {
      tarballRequests.push(url);
      response.writeHead(404).end();
      return;
    }
    if (request.method !== 'GET' || !versions.has(url)) {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    // no-store: the metadata of a throwaway registry must not settle in the user's npm cache.
    response
      .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(JSON.stringify(packument(url)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/`,
    tarballRequests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Orders plain `x.y.z[-pre]` versions (all the lockfile holds); pre-releases sort first. */
function compareVersions(a: string, b: string): number {
  const parse = (version: string) => {
    const [core = '', pre] = version.split('-', 2);
    return { parts: core.split('.').map(Number), pre };
  };
  const left = parse(a);
  const right = parse(b);
  for (let index = 0; index < 3; index++) {
    const difference = (left.parts[index] ?? 0) - (right.parts[index] ?? 0);
    if (difference !== 0) return difference;
  }
  if (left.pre === right.pre) return 0;
  if (left.pre === undefined) return 1;
  if (right.pre === undefined) return -1;
  return left.pre < right.pre ? -1 : 1;
}
