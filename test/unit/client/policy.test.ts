/**
 * The client's policy (issue 10): it must pin PCR0, and two pins for one index are a usage error
 * (ERR_POLICY_INVALID) wherever they come from, instead of the later one silently winning.
 */
import { describe, expect, it } from 'vitest';
import { resolvePolicy } from '../../../client/index.ts';
import type { ClientPolicy } from '../../../client/index.ts';
import { codeOf } from '../../helpers/codes.ts';

const A = 'a'.repeat(96);
const B = 'b'.repeat(96);
const C = 'c'.repeat(96);
const pcrsJson = (measurements: string) =>
  `{ "Measurements": { "HashAlgorithm": "Sha384 { ... }", ${measurements} } }`;
const resolve = (pcrs: ClientPolicy['pcrs']) => codeOf(() => resolvePolicy({ pcrs }));

describe('client policy: PCR0 must be pinned', () => {
  it('control: PCR0 alone, or with PCR3 → resolves', () => {
    expect(resolve({ 0: A })).toBe('accepted');
    expect(resolve({ 0: A, 3: B })).toBe('accepted');
    expect(resolve(pcrsJson(`"PCR0": "${A}", "PCR1": "${B}", "PCR2": "${C}"`))).toBe('accepted');
  });

  it.each([
    ['PCR3 alone (an object)', { 3: B }],
    [
      'PCR1, PCR2, PCR8 (a Map)',
      new Map([
        [1, A],
        [2, B],
        [8, C],
      ]),
    ],
    ['nothing', {}],
  ])('%s → ERR_POLICY_INVALID', (_name, pcrs) => {
    expect(resolve(pcrs)).toBe('ERR_POLICY_INVALID');
  });

  it('a pcrs.json without PCR0 → ERR_POLICY_INVALID', () => {
    expect(resolve(pcrsJson(`"PCR1": "${B}", "PCR2": "${C}"`))).toBe('ERR_POLICY_INVALID');
  });

  it('the refusal says what to do', () => {
    expect(() => resolvePolicy({ pcrs: { 3: B } })).toThrow(/PCR0/);
  });
});

describe('client policy: conflicting pins for one index', () => {
  it('control: a pcrs.json and an explicit map that agree → resolves to the union', () => {
    const policy = resolvePolicy({ pcrs: [pcrsJson(`"PCR0": "${A}", "PCR1": "${B}"`), { 0: A, 3: C }] });
    expect([...policy.expectedPcrs.keys()].sort()).toEqual([0, 1, 3]);
    expect(Buffer.from(policy.expectedPcrs.get(0)!).toString('hex')).toBe(A);
  });

  it('a pcrs.json and an explicit map that disagree on PCR0 → ERR_POLICY_INVALID', () => {
    expect(resolve([pcrsJson(`"PCR0": "${A}"`), { 0: B }])).toBe('ERR_POLICY_INVALID');
    expect(resolve([{ 0: B }, pcrsJson(`"PCR0": "${A}"`)])).toBe('ERR_POLICY_INVALID');
  });

  it.each([
    ['"PCR0" twice', `"PCR0": "${A}", "PCR0": "${B}"`],
    ['"PCR0" twice with equal values', `"PCR0": "${A}", "PCR0": "${A}"`],
    ['"PCR0" and "PCR00"', `"PCR0": "${A}", "PCR00": "${B}"`],
    ['"PCR0" and an escaped "PCR\\u0030"', `"PCR0": "${A}", "PCR\\u0030": "${B}"`],
  ])('a pcrs.json naming one index twice (%s) → ERR_POLICY_INVALID', (_name, measurements) => {
    // JSON.parse alone keeps the last value: the file would pin B where its first line says A.
    expect(resolve(pcrsJson(measurements))).toBe('ERR_POLICY_INVALID');
  });

  it('control: equal keys in different objects of a pcrs.json are not duplicates', () => {
    const json = `{ "Other": { "PCR0": "x" }, "Measurements": { "PCR0": "${A}" } }`;
    expect(resolve(json)).toBe('accepted');
  });

  it.each([
    [
      'a Map with 0 and "0"',
      new Map<number | string, string>([
        [0, A],
        ['0', B],
      ]),
    ],
    ['an object with "0" and "00"', { '0': A, '00': B }],
    ['an object with "0" and "00", equal values', { '0': A, '00': A }],
  ])('%s → ERR_POLICY_INVALID', (_name, pcrs) => {
    expect(resolve(pcrs as ClientPolicy['pcrs'])).toBe('ERR_POLICY_INVALID');
  });
});
