/**
 * The model identity an artifact's encryption context carries is read from a header the parent
 * supplies; the enclave trusts it only in this exact form (DESIGN.md 4.7).
 */
import { describe, expect, it } from 'vitest';
import {
  CONTEXT_MODEL_NAME,
  CONTEXT_MODEL_SHA384,
  identityFromContext,
  sealingContext,
} from '../../../../shared/sealing/index.ts';
import { codeOf } from '../../../helpers/codes.ts';

const SHA384 = '0a'.repeat(48);

describe('sealing context', () => {
  it('names the model and its digest under the two documented keys, and reads them back', () => {
    const context = sealingContext({ name: 'dense-1.0', sha384: SHA384 });
    expect(context).toEqual({ 'nitro-infer:model': 'dense-1.0', 'nitro-infer:sha384': SHA384 });
    expect(identityFromContext(context)).toEqual({ name: 'dense-1.0', sha384: SHA384 });
  });

  it.each<[string, Record<string, string>]>([
    ['no name', { [CONTEXT_MODEL_SHA384]: SHA384 }],
    ['no digest', { [CONTEXT_MODEL_NAME]: 'm' }],
    ['an empty name', { [CONTEXT_MODEL_NAME]: '', [CONTEXT_MODEL_SHA384]: SHA384 }],
    ['a name starting with "."', { [CONTEXT_MODEL_NAME]: '.hidden', [CONTEXT_MODEL_SHA384]: SHA384 }],
    ['a name with "/"', { [CONTEXT_MODEL_NAME]: 'a/b', [CONTEXT_MODEL_SHA384]: SHA384 }],
    ['a name of 129 characters', { [CONTEXT_MODEL_NAME]: 'm'.repeat(129), [CONTEXT_MODEL_SHA384]: SHA384 }],
    ['an uppercase digest', { [CONTEXT_MODEL_NAME]: 'm', [CONTEXT_MODEL_SHA384]: '0A'.repeat(48) }],
    ['a SHA-256-sized digest', { [CONTEXT_MODEL_NAME]: 'm', [CONTEXT_MODEL_SHA384]: '0a'.repeat(32) }],
    ['"constructor" keys only', { constructor: 'm', toString: SHA384 }],
  ])('refuses %s with ERR_ARTIFACT_INVALID', (_what, context) => {
    expect(codeOf(() => identityFromContext(context))).toBe('ERR_ARTIFACT_INVALID');
  });

  it('refuses to seal under a bad identity', () => {
    expect(codeOf(() => sealingContext({ name: 'a b', sha384: SHA384 }))).toBe('ERR_ARTIFACT_INVALID');
    expect(codeOf(() => sealingContext({ name: 'm', sha384: 'xyz' }))).toBe('ERR_ARTIFACT_INVALID');
  });
});
