/**
 * STYLE.md section 2, checked on the source itself (ESLint checks it too): the parent cannot import
 * the code that decrypts, shared/ does no I/O, production code never imports sim/ or test/.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/fixtures.ts';

const RULES: Record<string, { folders: string[]; packages: string[] }> = {
  shared: {
    folders: ['enclave', 'parent', 'client', 'scripts', 'sim', 'test', 'transport'],
    packages: [
      'node:fs',
      'node:fs/promises',
      'node:net',
      'node:child_process',
      'fastify',
      'pino',
      'onnxruntime-node',
    ],
  },
  enclave: {
    folders: ['parent', 'client', 'scripts', 'sim', 'test'],
    packages: ['fastify', '@aws-sdk/client-s3'],
  },
  parent: { folders: ['enclave', 'client', 'scripts', 'sim', 'test'], packages: ['onnxruntime-node'] },
  client: { folders: ['enclave', 'parent', 'scripts', 'sim', 'test', 'transport'], packages: ['fastify'] },
  proxy: {
    folders: ['enclave', 'parent', 'scripts', 'sim', 'test', 'transport'],
    packages: ['fastify', 'onnxruntime-node'],
  },
  transport: {
    folders: ['enclave', 'parent', 'client', 'scripts', 'sim', 'test'],
    packages: ['fastify', 'onnxruntime-node'],
  },
};

function sources(folder: string): string[] {
  return readdirSync(path.join(PROJECT_ROOT, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [
    ...text.matchAll(
      /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    ),
  ].map((match) => (match[1] ?? match[2]) as string);
}

describe('module boundaries', () => {
  it.each(Object.entries(RULES))('%s/ imports only what it may', (folder, rule) => {
    const violations: string[] = [];
    for (const file of sources(folder)) {
      for (const specifier of imports(file)) {
        const target = specifier.startsWith('.')
          ? path.relative(PROJECT_ROOT, path.resolve(path.dirname(file), specifier)).split(path.sep)[0]
          : undefined;
        if ((target !== undefined && rule.folders.includes(target)) || rule.packages.includes(specifier)) {
          violations.push(`${path.relative(PROJECT_ROOT, file)} → ${specifier}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('the scanner sees imports (so an empty result above means something)', () => {
    expect(imports(path.join(PROJECT_ROOT, 'shared', 'attestation', 'verify.ts'))).toContain(
      './cose-sign1.ts',
    );
  });
});
