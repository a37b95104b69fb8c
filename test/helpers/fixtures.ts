/**
 * Access to `../shared/fixtures` (real AWS bytes). Tests read them in place through
 * NITRO_FIXTURES_DIR and skip, visibly, where the folder is absent; copies never enter the repo.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const FIXTURES_DIR = path.resolve(
  PROJECT_ROOT,
  process.env.NITRO_FIXTURES_DIR ?? '../shared/fixtures',
);

export const HAVE_FIXTURES = existsSync(path.join(FIXTURES_DIR, 'attestation', 'manifest.json'));

/** The reason printed in the name of the test that stands in for skipped fixture tests. */
export const FIXTURES_ABSENT = `fixtures absent at ${FIXTURES_DIR} (set NITRO_FIXTURES_DIR): fixture tests skipped`;

// CI always has the fixtures (.ci/run sets CI=true): there a missing folder fails every file that
// needs it instead of passing as skips; elsewhere the skip is loud.
if (!HAVE_FIXTURES && process.env.CI === 'true') {
  throw new Error(`fixtures absent at ${FIXTURES_DIR} (set NITRO_FIXTURES_DIR); CI=true requires them`);
}
if (!HAVE_FIXTURES) console.warn(`\n*** ${FIXTURES_ABSENT} ***\n`);

/** One entry of `attestation/manifest.json`. */
export interface ManifestEntry {
  readonly file: string;
  readonly sha256: string;
  readonly module_id: string;
  readonly timestamp_ms: number;
  readonly valid_from_utc: string;
  readonly valid_until_utc: string;
  readonly debug_mode: boolean;
  readonly pcr_count: number;
  readonly pcr0: string;
  readonly pcr1: string;
  readonly pcr2: string;
  readonly pcr8: string;
  readonly expect: 'valid' | 'invalid';
}

export function fixtureBytes(relative: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(FIXTURES_DIR, relative)));
}

export function fixturePath(relative: string): string {
  return path.join(FIXTURES_DIR, relative);
}

export function manifest(): ManifestEntry[] {
  return HAVE_FIXTURES
    ? (JSON.parse(
        readFileSync(path.join(FIXTURES_DIR, 'attestation', 'manifest.json'), 'utf8'),
      ) as ManifestEntry[])
    : [];
}

/** Milliseconds of a manifest time such as `2024-09-09 22:49:12+00:00`. */
export function manifestTime(text: string): number {
  return Date.parse(text.replace(' ', 'T'));
}

export function shortName(entry: ManifestEntry): string {
  return path.basename(entry.file);
}
