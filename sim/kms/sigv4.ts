/**
 * SigV4 verification for the KMS simulator, so that the real AWS SDK is exercised with real
 * signatures: the request is signed again with the one secret the simulator issued (through the
 * SDK's own signer, over exactly the headers the client listed as signed) and the signatures
 * compared in constant time. Requests dated more than five minutes away are refused, as AWS does.
 */
import { timingSafeEqual } from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

/** AWS refuses signatures dated more than five minutes from its clock. */
export const MAX_SIGNATURE_SKEW_MS = 5 * 60_000;

/** The credentials the simulator accepts. */
export interface SimulatorCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** A request as the HTTPS server received it. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Uint8Array;
}

/** Why a signature was refused, in AWS's error vocabulary. */
export type SignatureFailure = {
  readonly type:
    'MissingAuthenticationTokenException' | 'InvalidSignatureException' | 'UnrecognizedClientException';
  readonly message: string;
};

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** Returns undefined when the request is signed by `credentials` for `region`/`service`, else why not. */
export async function verifySigV4(
  request: ReceivedRequest,
  credentials: SimulatorCredentials,
  region: string,
  service: string,
  now: number = Date.now(),
): Promise<SignatureFailure | undefined> {
  const authorization = header(request, 'authorization');
  if (authorization === undefined)
    return { type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  const match = AUTHORIZATION.exec(authorization);
  if (match === null)
    return { type: 'InvalidSignatureException', message: 'Authorization header is not SigV4' };
  const [, accessKeyId, , signedRegion, signedService, signedHeaderList, signature] =
    match as unknown as string[];
  if (accessKeyId !== credentials.accessKeyId) {
    return {
      type: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    };
  }
  if (signedRegion !== region || signedService !== service) {
    return {
      type: 'InvalidSignatureException',
      message: `Credential should be scoped to ${region}/${service}`,
    };
  }
  const amzDate = header(request, 'x-amz-date');
  const signingDate = amzDate === undefined ? Number.NaN : parseAmzDate(amzDate);
  if (!Number.isFinite(signingDate))
    return { type: 'InvalidSignatureException', message: 'X-Amz-Date is missing or invalid' };
  if (Math.abs(now - signingDate) > MAX_SIGNATURE_SKEW_MS) {
    return {
      type: 'InvalidSignatureException',
      message: 'Signature expired: the request date is more than 5 minutes from the server time',
    };
  }

  const signedHeaders = (signedHeaderList as string).split(';');
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
    return { type: 'InvalidSignatureException', message: 'host and x-amz-date must be signed' };
  }
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const value = name === 'host' ? request.host : header(request, name);
    if (value === undefined)
      return { type: 'InvalidSignatureException', message: `signed header ${name} is missing` };
    headers[name] = value;
  }
  const [path, query] = splitPath(request.path);
  const signer = new SignatureV4({
    credentials,
    region,
    service,
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: true,
  });
  const resigned = await signer.sign(
    new HttpRequest({
      method: request.method,
      protocol: 'https:',
      hostname: request.host,
      path,
      query,
      headers,
      body: request.body,
    }),
    { signingDate: new Date(signingDate), signableHeaders: new Set(signedHeaders) },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(
    String(resigned.headers.authorization ?? resigned.headers.Authorization),
  )?.[1];
  const resignedList = /SignedHeaders=([a-z0-9;-]+)/.exec(
    String(resigned.headers.authorization ?? resigned.headers.Authorization),
  )?.[1];
  if (
    expected === undefined ||
    resignedList !== signedHeaderList ||
    !timingSafeEqual(Buffer.from(expected), Buffer.from(signature as string))
  ) {
    return {
      type: 'InvalidSignatureException',
      message: 'The request signature we calculated does not match the signature you provided.',
    };
  }
  return undefined;
}

function header(request: ReceivedRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function parseAmzDate(text: string): number {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (match === null) return Number.NaN;
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  return Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
}

function splitPath(target: string): [string, Record<string, string>] {
  const url = new URL(target, 'https://placeholder');
  return [url.pathname, Object.fromEntries(url.searchParams)];
}
