/**
 * "A parent that cannot import decryption code cannot log plaintext" (STYLE.md section 2; issue 10,
 * Build 8), checked two ways: ESLint's rule on each parent/ file's direct imports, and a transitive
 * walk from every parent/ file and every parent-allowed shared module. Each check is shown to fire
 * on a probe that breaks the property, so an empty violation list means something.
 */
import { ESLint } from 'eslint';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';
import { forbiddenChains, readImportGraph, sourceFiles } from '../helpers/import-graph.ts';
import type { ImportGraph, ModuleId } from '../helpers/import-graph.ts';

/** shared/ modules without private keys or plaintext handling: the parent may import these. */
const PARENT_MAY: readonly ModuleId[] = [
  'shared/asn1.ts',
  'shared/attestation/certificate-chain.ts',
  'shared/attestation/certificate-profile.ts',
  'shared/attestation/cose-sign1.ts',
  'shared/attestation/document.ts',
  'shared/attestation/index.ts',
  'shared/attestation/nitro-cli-measurements.ts',
  'shared/attestation/policy.ts',
  'shared/attestation/root.ts',
  'shared/attestation/verify.ts',
  'shared/binding.ts',
  'shared/cbor-direct.ts',
  'shared/cbor-scan.ts',
  'shared/cbor.ts',
  'shared/cluster-preference.ts',
  'shared/config.ts',
  'shared/errors.ts',
  'shared/frame-buffer.ts',
  'shared/frame-layout.ts',
  'shared/frame-writer.ts',
  'shared/frames.ts',
  'shared/key-policy.ts',
  'shared/ohttp/key-config.ts',
  'shared/ohttp/padding.ts',
  'shared/ohttp/varint.ts',
  'shared/telemetry.ts',
  'shared/transport-address.ts',
];

/** shared/ modules only the enclave and client may import, and why. */
const ENCLAVE_AND_CLIENT_ONLY: Readonly<Record<ModuleId, string>> = {
  'shared/ohttp/encapsulation.ts': 'the OHTTP gateway opens requests with the private key',
  'shared/ohttp/node-primitives.ts': 'HPKE primitives: X25519 with private keys, AEAD open',
  'shared/receipts.ts': 'signs receipts with the enclave receipt key',
  'shared/sealing/index.ts': 'encrypts plaintext models (and names the KMS SDK that decrypts them)',
  'shared/ohttp/bhttp.ts': 'the inner plaintext HTTP messages, which exist only after decryption',
  'shared/inference/v2.ts': 'plaintext tensors, which exist only after decryption',
  'shared/inference/binary-tensor.ts': 'raw plaintext tensor bytes, which exist only after decryption',
  'shared/inference/v2-tensors.ts': 'converts plaintext tensors, which exist only after decryption',
};

/** Folders the parent must not reach even indirectly (STYLE.md section 2). */
const PARENT_FORBIDDEN_FOLDERS = ['enclave/', 'client/', 'scripts/', 'sim/', 'test/'];

/** Packages that decrypt or run models. */
const PARENT_FORBIDDEN_PACKAGES = [
  'onnxruntime-node',
  '@hpke/core',
  '@hpke/common',
  '@hpke/chacha20poly1305',
  '@aws-crypto/client-node',
];

// Nothing is exempt (parent/cluster-key.ts, the last exception, is gone with the KMS cluster key).
const TEMPORARILY_ALLOWED = new Set<string>();

function parentMayNotImport(from: ModuleId, to: ModuleId): boolean {
  if (TEMPORARILY_ALLOWED.has(`${from} → ${to}`)) return false;
  if (to.startsWith('package:')) {
    const name = to.slice('package:'.length);
    return PARENT_FORBIDDEN_PACKAGES.some((banned) => name === banned || name.startsWith(`${banned}/`));
  }
  if (to.startsWith('shared/')) return !PARENT_MAY.includes(to);
  return PARENT_FORBIDDEN_FOLDERS.some((folder) => to.startsWith(folder));
}

describe('what the parent may import from shared/', () => {
  it('every shared/ module is classified exactly once (a new one needs a decision)', () => {
    const classified = [...PARENT_MAY, ...Object.keys(ENCLAVE_AND_CLIENT_ONLY)].sort();
    expect(new Set(classified).size).toBe(classified.length);
    expect(classified).toEqual(sourceFiles(PROJECT_ROOT, 'shared'));
  });

  it('no parent/ file and no parent-allowed shared module reaches key handling, even indirectly', () => {
    const entries = [...sourceFiles(PROJECT_ROOT, 'parent'), ...PARENT_MAY];
    const graph = readImportGraph(PROJECT_ROOT, entries);
    // The walk really crossed folders: parent → transport → shared, and into attestation/.
    expect(graph.get('parent/main.ts')).toContain('transport/index.ts');
    expect(graph.get('shared/attestation/verify.ts')).toContain('shared/attestation/cose-sign1.ts');
    expect(forbiddenChains(graph, entries, parentMayNotImport)).toEqual([]);
  });
});

describe('the transitive scanner, on synthetic graphs', () => {
  const graphOf = (edges: Record<string, string[]>): ImportGraph => new Map(Object.entries(edges));

  it('catches a private module reached through a parent-allowed one', () => {
    const graph = graphOf({
      'parent/app.ts': ['transport/index.ts'],
      'transport/index.ts': ['shared/frames.ts'],
      'shared/frames.ts': ['shared/errors.ts', 'shared/ohttp/encapsulation.ts'],
      'shared/errors.ts': [],
    });
    expect(forbiddenChains(graph, ['parent/app.ts'], parentMayNotImport)).toEqual([
      'parent/app.ts → transport/index.ts → shared/frames.ts → shared/ohttp/encapsulation.ts',
    ]);
  });

  it('catches a decrypting package reached indirectly, and an enclave/ file', () => {
    const graph = graphOf({
      'parent/main.ts': ['shared/binding.ts', 'transport/index.ts'],
      'shared/binding.ts': ['package:@hpke/core'],
      'transport/index.ts': ['enclave/keys.ts'],
    });
    expect(forbiddenChains(graph, ['parent/main.ts'], parentMayNotImport)).toEqual([
      'parent/main.ts → shared/binding.ts → package:@hpke/core',
      'parent/main.ts → transport/index.ts → enclave/keys.ts',
    ]);
  });

  it('passes the same graph once the private edge is gone, and terminates on cycles', () => {
    const graph = graphOf({
      'parent/app.ts': ['shared/frames.ts'],
      'shared/frames.ts': ['shared/cbor.ts'],
      'shared/cbor.ts': ['shared/frames.ts', 'package:cbor2'],
    });
    expect(forbiddenChains(graph, ['parent/app.ts'], parentMayNotImport)).toEqual([]);
  });

  it('refuses to scan past a relative import it cannot resolve', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'nitro-infer-graph-'));
    try {
      mkdirSync(path.join(root, 'parent'));
      writeFileSync(path.join(root, 'parent', 'a.ts'), "export { b } from './b.ts';\n");
      writeFileSync(path.join(root, 'parent', 'b.ts'), "import '../shared/gone.ts';\nexport const b = 1;\n");
      expect(() => readImportGraph(root, ['parent/a.ts'])).toThrow(
        'parent/b.ts: cannot resolve ../shared/gone.ts',
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('the ESLint rule for parent/', () => {
  let eslint: ESLint;
  beforeAll(() => {
    eslint = new ESLint({ cwd: PROJECT_ROOT });
  });

  /** Rule ids ESLint reports for an in-memory file at `file` that imports `specifier`. */
  async function restrictedImports(file: string, specifier: string): Promise<string[]> {
    const [result] = await eslint.lintText(
      `import type { Probe } from '${specifier}';\nexport type Probed = Probe;\n`,
      { filePath: path.join(PROJECT_ROOT, file) },
    );
    return (result?.messages ?? [])
      .map((message) => message.ruleId ?? message.message)
      .filter((rule) => rule === 'no-restricted-imports');
  }

  /** The specifier that reaches `module` from `file`, both project-relative. */
  const from = (file: string, module: string): string =>
    path.posix.relative(path.posix.dirname(file), module).replace(/^(?!\.)/, './');

  it('fires on a parent/ probe importing the OHTTP gateway, and not on the same probe in enclave/', async () => {
    expect(await restrictedImports('parent/probe.ts', '../shared/ohttp/encapsulation.ts')).toEqual([
      'no-restricted-imports',
    ]);
    expect(await restrictedImports('parent/routes/probe.ts', '../../shared/ohttp/encapsulation.ts')).toEqual([
      'no-restricted-imports',
    ]);
    expect(await restrictedImports('enclave/probe.ts', '../shared/ohttp/encapsulation.ts')).toEqual([]);
  });

  it.each(Object.keys(ENCLAVE_AND_CLIENT_ONLY))('fires on a parent/ import of %s', async (module) => {
    expect(await restrictedImports('parent/link/probe.ts', from('parent/link/probe.ts', module))).toEqual([
      'no-restricted-imports',
    ]);
  });

  it.each(PARENT_MAY)('lets parent/ import %s', async (module) => {
    expect(await restrictedImports('parent/link/probe.ts', from('parent/link/probe.ts', module))).toEqual([]);
  });

  it.each([
    ['a path that walks back in', '../shared/attestation/../receipts.ts'],
    ['no extension', '../shared/receipts'],
    ['a dot segment', '../shared/./receipts.ts'],
    ['a decrypting package', '@hpke/core'],
    ['a subpath of one', '@aws-crypto/client-node/build/main'],
  ])('fires on %s', async (_what, specifier) => {
    expect(await restrictedImports('parent/probe.ts', specifier)).toEqual(['no-restricted-imports']);
  });
});
