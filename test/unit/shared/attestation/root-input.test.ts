/**
 * Trusted roots as users hold them (issue 12 item 5): PEM or DER, string, Buffer or Uint8Array,
 * one certificate or a bundle. A root that cannot be read is ERR_POLICY_INVALID naming what is
 * wrong, never a later, misleading ERR_ATTESTATION_ROOT_UNTRUSTED.
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createClient } from '../../../../client/index.ts';
import {
  AWS_NITRO_ROOT_G1_DER,
  AWS_NITRO_ROOT_G1_PEM,
  rootCertificatesToDer,
} from '../../../../shared/attestation/index.ts';
import { codeOf } from '../../../helpers/codes.ts';
import { PCR0, fakeOhttpParent } from '../../../helpers/ohttp-parent.ts';

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const pemOf = (der: Uint8Array) => new X509Certificate(Buffer.from(der)).toString();
const messageOf = (action: () => unknown) => {
  try {
    action();
  } catch (error) {
    return `${(error as { code: string }).code}: ${(error as Error).message}`;
  }
  return 'accepted';
};

describe('rootCertificatesToDer', () => {
  it('PEM string, PEM Buffer, DER Buffer and DER Uint8Array all give the same DER', async () => {
    for (const input of [
      AWS_NITRO_ROOT_G1_PEM,
      Buffer.from(AWS_NITRO_ROOT_G1_PEM),
      Buffer.from(AWS_NITRO_ROOT_G1_DER),
      new Uint8Array(AWS_NITRO_ROOT_G1_DER),
    ]) {
      const roots = rootCertificatesToDer(input);
      expect(roots).toHaveLength(1);
      expect(same(roots[0]!, AWS_NITRO_ROOT_G1_DER)).toBe(true);
    }
  });

  it('a PEM bundle with text between the certificates, and a list of inputs', async () => {
    const other = (await fakeOhttpParent()).rootCertificate;
    const bundle = `subject=CN=aws.nitro-enclaves\n${AWS_NITRO_ROOT_G1_PEM}\n\n# simulated\n${pemOf(other)}`;
    const fromBundle = rootCertificatesToDer(bundle);
    expect(fromBundle.map((der) => Buffer.from(der).toString('hex'))).toEqual(
      [AWS_NITRO_ROOT_G1_DER, other].map((der) => Buffer.from(der).toString('hex')),
    );
    expect(rootCertificatesToDer([AWS_NITRO_ROOT_G1_PEM, other])).toHaveLength(2);
  });

  it.each([
    ['empty text', ''],
    ['text without a certificate', 'hello'],
    [
      'a private key instead',
      '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n',
    ],
    ['a cut copy (no END line)', AWS_NITRO_ROOT_G1_PEM.slice(0, 300)],
    ['a block whose base64 is damaged', AWS_NITRO_ROOT_G1_PEM.replace('MIICETCC', 'MIIC*TCC')],
    [
      'a block that is base64 but no certificate',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----',
    ],
    ['DER with bytes after the certificate', new Uint8Array([...AWS_NITRO_ROOT_G1_DER, 0])],
    ['bytes that are neither', new Uint8Array([1, 2, 3])],
    ['an empty list', []],
  ] as const)('%s → ERR_POLICY_INVALID', (_, input) => {
    expect(codeOf(() => rootCertificatesToDer(input as never))).toBe('ERR_POLICY_INVALID');
  });

  it('the message names the input and what is wrong with it', () => {
    expect(messageOf(() => rootCertificatesToDer(['hello'], 'policy.roots'))).toMatch(
      /^ERR_POLICY_INVALID: policy\.roots holds no PEM certificate/,
    );
    expect(messageOf(() => rootCertificatesToDer([AWS_NITRO_ROOT_G1_PEM, 'x'], 'policy.roots'))).toMatch(
      /^ERR_POLICY_INVALID: policy\.roots\[1\] /,
    );
  });
});

describe('client policy roots', () => {
  it('a PEM root attests the enclave as its DER does', async () => {
    const parent = await fakeOhttpParent();
    for (const roots of [pemOf(parent.rootCertificate), Buffer.from(pemOf(parent.rootCertificate))]) {
      const client = createClient({
        endpoint: 'http://parent.invalid',
        policy: { pcrs: { 0: PCR0 }, roots },
        fetch: parent.fetch,
      });
      expect((await client.attest()).moduleId).toContain('i-0123456789abcdef0');
    }
  });

  it('a malformed PEM root fails when the client is made, with ERR_POLICY_INVALID', () => {
    const make = () =>
      createClient({
        endpoint: 'http://parent.invalid',
        policy: { pcrs: { 0: PCR0 }, roots: AWS_NITRO_ROOT_G1_PEM.slice(0, 200) },
      });
    expect(codeOf(make)).toBe('ERR_POLICY_INVALID');
  });
});
