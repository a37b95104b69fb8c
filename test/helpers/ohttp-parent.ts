/**
 * A parent and enclave in one `fetch` for SDK tests, no server needed: genuine simulated-NSM
 * documents binding a real OHTTP key config, and a gateway that opens requests and answers
 * `{"models": []}` inside the encryption. The test decides what each gateway POST gets back
 * (`answer`), can rotate the enclave's key (`rotate`), and reads what was requested (`requests`).
 */
import { randomBytes } from 'node:crypto';
import { DhkemX25519HkdfSha256 } from '@hpke/core';
import { SimulatedNsm } from '../../enclave/nsm/index.ts';
import { encodeUserData } from '../../shared/binding.ts';
import { encodeBhttpResponse } from '../../shared/ohttp/bhttp.ts';
import { OhttpGateway } from '../../shared/ohttp/encapsulation.ts';
import { DEFAULT_SYMMETRIC_ALGORITHMS, HPKE_KEM, encodeKeyConfig } from '../../shared/ohttp/key-config.ts';
import { SimulatedNitroPki } from '../../sim/index.ts';

export const PCR0 = new Uint8Array(48).fill(0x5a);

/** What the parent answers a gateway POST with; `relay` is the genuine encrypted answer. */
export type GatewayAnswer = (relay: () => Promise<Response>, attempt: number) => Promise<Response>;

export interface FakeOhttpParent {
  readonly fetch: typeof fetch;
  readonly rootCertificate: Uint8Array;
  /** `GET /v1/attestation` and `POST /.well-known/ohttp-gateway`, in order. */
  readonly requests: string[];
  /** A new key config (another key id and key), as a restarted enclave has. */
  rotate(): Promise<void>;
  /** Holds every attestation reply until `release()`; to make calls overlap. */
  hold(): void;
  release(): void;
  answer: GatewayAnswer;
}

export async function fakeOhttpParent(): Promise<FakeOhttpParent> {
  const pki = SimulatedNitroPki.create();
  const nsm = new SimulatedNsm({
    identity: pki.signingIdentitySource('i-0123456789abcdef0-enc0123456789abcdef'),
    moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
    bootPcrs: new Map([[0, PCR0]]),
  });
  const receiptKey = new Uint8Array(randomBytes(32));
  const kem = new DhkemX25519HkdfSha256();
  let keyId = 1;
  let keyConfig: Uint8Array = new Uint8Array(0);
  let gateway: OhttpGateway | undefined;
  const rotate = async () => {
    const pair = await kem.generateKeyPair();
    const config = {
      keyId: keyId++,
      kemId: HPKE_KEM.DHKEM_X25519_HKDF_SHA256,
      publicKey: new Uint8Array(await kem.serializePublicKey(pair.publicKey)),
      symmetricAlgorithms: DEFAULT_SYMMETRIC_ALGORITHMS,
    };
    keyConfig = encodeKeyConfig(config);
    gateway = await OhttpGateway.create(
      config,
      new Uint8Array(await kem.serializePrivateKey(pair.privateKey)),
    );
  };
  await rotate();
  let held: Promise<void> | undefined;
  let release = () => {};
  let posts = 0;
  const parent: FakeOhttpParent = {
    rootCertificate: pki.rootCertificate,
    requests: [],
    rotate,
    hold() {
      held = new Promise((resolve) => (release = resolve));
    },
    release() {
      held = undefined;
      release();
    },
    answer: (relay) => relay(),
    fetch: (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = new URL(String(input));
      parent.requests.push(`${init?.method ?? 'GET'} ${url.pathname}`);
      if (url.pathname === '/v1/attestation') {
        if (held !== undefined) await held;
        const document = await nsm.attest({
          nonce: new Uint8Array(Buffer.from(url.searchParams.get('nonce') ?? '', 'hex')),
          userData: encodeUserData({ ohttpKeyConfig: keyConfig, receiptPublicKey: receiptKey, models: [] }),
        });
        const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
        return Response.json({
          document: b64(document),
          keyConfig: b64(keyConfig),
          receiptKey: b64(receiptKey),
          models: [],
        });
      }
      const body = new Uint8Array(init!.body as Uint8Array);
      const relay = async () => {
        try {
          const request = await gateway!.decapsulate(body);
          const content = new TextEncoder().encode(JSON.stringify({ models: [] }));
          const sealed = request.respond(
            encodeBhttpResponse({
              informational: [],
              status: 200,
              headers: [['content-type', 'application/json']],
              content,
              trailers: [],
            }),
          );
          return new Response(sealed, { headers: { 'content-type': 'message/ohttp-res' } });
        } catch {
          // What the parent answers when the enclave does not hold the key (parent/routes/ohttp.ts).
          return ohttpKeyProblem();
        }
      };
      return parent.answer(relay, posts++);
    }) as typeof fetch,
  };
  return parent;
}

/** RFC 9458 section 5.3's problem, as the parent sends it. */
export function ohttpKeyProblem(contentType = 'application/problem+json'): Response {
  return new Response(
    JSON.stringify({
      type: 'https://iana.org/assignments/http-problem-types#ohttp-key',
      title: 'key configuration unknown',
      status: 400,
      code: 'ERR_OHTTP_KEY_UNKNOWN',
    }),
    { status: 400, headers: { 'content-type': contentType } },
  );
}

export const attestations = (requests: readonly string[]) =>
  requests.filter((request) => request === 'GET /v1/attestation').length;
export const gatewayPosts = (requests: readonly string[]) =>
  requests.filter((request) => request === 'POST /.well-known/ohttp-gateway').length;
