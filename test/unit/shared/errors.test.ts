import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AttestationError, ERROR_CODES, NitroInferError, isNitroInferError } from '../../../shared/errors.ts';
import { PROJECT_ROOT } from '../../helpers/fixtures.ts';

describe('error codes', () => {
  it('docs/errors.md lists exactly the codes of ERROR_CODES', () => {
    const documented = [
      ...readFileSync(path.join(PROJECT_ROOT, 'docs/errors.md'), 'utf8').matchAll(
        /^\| `(ERR_[A-Z0-9_]+)` +\|/gm,
      ),
    ].map((match) => match[1]);
    expect([...documented].sort()).toEqual([...ERROR_CODES].sort());
  });

  it('codes are unique and follow ERR_<AREA>_<WHAT>', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) expect(code).toMatch(/^ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  });

  it('recognises its errors by brand, not by instanceof or message', () => {
    const error = new AttestationError('ERR_ATTESTATION_STALE', 'old');
    expect(isNitroInferError(error)).toBe(true);
    expect(error.code).toBe('ERR_ATTESTATION_STALE');
    expect(error.name).toBe('AttestationError');
    // A look-alike from elsewhere (plain Error with a code) is not ours.
    expect(isNitroInferError(Object.assign(new Error('x'), { code: 'ERR_ATTESTATION_STALE' }))).toBe(false);
    // An object carrying the brand but an unknown code is not trusted either.
    expect(isNitroInferError({ [Symbol.for('nitro-infer.error')]: true, code: 'ERR_MADE_UP' })).toBe(false);
    expect(new NitroInferError('ERR_INTERNAL', 'x', { cause: 1 }).cause).toBe(1);
  });
});
