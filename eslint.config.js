// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Module boundaries of STYLE.md section 2, enforced at lint time so that, for example, the parent
 * cannot even import the code that could decrypt what it relays.
 * @param {string[]} folders
 * @param {string[]} packages
 */
function forbid(folders, packages) {
  return {
    patterns: [
      ...folders.map((folder) => ({
        group: [`**/${folder}/**`, `**/${folder}`],
        message: `this folder must not import from ${folder}/ (STYLE.md section 2)`,
      })),
      ...packages.map((name) => ({
        group: [name, `${name}/**`],
        message: `this folder must not import ${name} (STYLE.md section 2)`,
      })),
    ],
  };
}

/**
 * What parent/ may import from shared/ (STYLE.md section 2; issue 10, Build 8): framing, errors,
 * config, transport addresses, public key configs, the attestation verifier and the public binding.
 * Everything else in shared/ is for the enclave and client only: the OHTTP gateway and HPKE
 * primitives (they open requests with the private key), cluster-key derivation, receipt signing,
 * sealing, and the inner plaintext formats (Binary HTTP, V2 tensors). An allow-list, so a new shared
 * module stays closed to the parent until someone decides it holds no secret. Lint sees one file's
 * direct imports; test/unit/parent-boundary.test.ts follows them transitively and keeps this list
 * equal to the classification there.
 */
const PARENT_SHARED_MODULES = [
  'errors.ts',
  'cbor.ts',
  'cbor-scan.ts',
  'cbor-direct.ts',
  'frames.ts',
  'frame-buffer.ts',
  'frame-layout.ts',
  'cluster-preference.ts',
  'frame-writer.ts',
  'config.ts',
  'transport-address.ts',
  'telemetry.ts',
  'binding.ts',
  'key-policy.ts',
  'asn1.ts',
  'ohttp/key-config.ts',
  'ohttp/varint.ts',
  'ohttp/padding.ts',
  'attestation/*.ts',
];

/** Packages that decrypt or run models; the parent relays ciphertext and needs none of them. */
const PARENT_FORBIDDEN_PACKAGES = [
  'onnxruntime-node',
  '@hpke/core',
  '@hpke/common',
  '@hpke/chacha20poly1305',
  '@aws-crypto/client-node',
];

/**
 * One regular expression, not gitignore-style globs: a glob that excludes `shared/**` cannot
 * re-include `shared/ohttp/key-config.ts` (a file in an excluded directory stays excluded). Any
 * specifier that reaches into shared/ and is not exactly an allowed file fires, so `./`, `../` or
 * missing extensions cannot slip through either.
 * @type {{ regex: string, message: string }}
 */
const PARENT_SHARED_ALLOW_LIST = {
  regex: `(^|/)shared/(?!(${PARENT_SHARED_MODULES.map((module) =>
    module.replaceAll('.', '\\.').replaceAll('*', '[a-z0-9-]+'),
  ).join('|')})$)`,
  message:
    'parent/ may import from shared/ only modules without private keys or plaintext handling (PARENT_SHARED_MODULES in eslint.config.js)',
};

const parentFolderRules = forbid(['enclave', 'client', 'scripts', 'sim', 'test'], PARENT_FORBIDDEN_PACKAGES);

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'packages/*/dist/', 'coverage/', 'build/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly' } },
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportAllDeclaration', message: 'list exports explicitly (STYLE.md section 1)' },
        { selector: 'TSEnumDeclaration', message: 'use an `as const` object (STYLE.md section 3)' },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        forbid(
          ['enclave', 'parent', 'client', 'scripts', 'sim', 'test', 'transport'],
          ['node:fs', 'fs', 'node:net', 'net', 'node:child_process', 'fastify', 'pino', 'onnxruntime-node'],
        ),
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'shared/ has no process state' }],
    },
  },
  {
    files: ['enclave/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        forbid(['parent', 'client', 'scripts', 'sim', 'test'], ['fastify', '@aws-sdk/client-s3']),
      ],
    },
  },
  {
    files: ['parent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [...parentFolderRules.patterns, PARENT_SHARED_ALLOW_LIST] },
      ],
    },
  },
  {
    files: ['client/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        forbid(['enclave', 'parent', 'scripts', 'sim', 'test', 'transport'], ['fastify']),
      ],
    },
  },
  {
    // The local proxy is a client: it reaches the enclave only through the SDK.
    files: ['proxy/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        forbid(['enclave', 'parent', 'scripts', 'sim', 'test', 'transport'], ['fastify', 'onnxruntime-node']),
      ],
    },
  },
  {
    files: ['transport/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        forbid(['enclave', 'parent', 'client', 'scripts', 'sim', 'test'], ['fastify', 'onnxruntime-node']),
      ],
    },
  },
  {
    files: ['infra/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        forbid(['enclave', 'parent', 'client', 'scripts', 'sim', 'test', 'transport'], ['onnxruntime-node']),
      ],
    },
  },
  {
    files: ['scripts/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', forbid(['test'], [])] },
  },
);
