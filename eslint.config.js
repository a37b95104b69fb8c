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

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'build/', 'bench/results/'] },
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
        forbid(['enclave', 'client', 'scripts', 'sim', 'test'], ['onnxruntime-node']),
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
