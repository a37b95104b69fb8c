/**
 * A KMS simulator that speaks the real protocol, so the real `@aws-sdk/client-kms` is its client:
 * HTTPS (a simulated CA; the certificate names `kms.<region>.amazonaws.com`), AWS JSON 1.1 with
 * `X-Amz-Target: TrentService.*`, SigV4 verified against the one credential it issued, key policies
 * with `kms:RecipientAttestation:*` conditions, and `Recipient` requests verified with the shared
 * attestation verifier and answered with `CiphertextForRecipient` and no `Plaintext`, as KMS does.
 */
import { randomBytes, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { verifyAttestation } from '../../shared/attestation/index.ts';
import { isNitroInferError } from '../../shared/errors.ts';
import { SimulatedCa } from '../simulated-ca.ts';
import { buildCmsEnvelope } from './cms-builder.ts';
import { isAllowed, parseKeyPolicy } from './key-policy.ts';
import { KeyStore, KmsException } from './key-store.ts';
import type { StoredKey } from './key-store.ts';
import { verifySigV4 } from './sigv4.ts';

/** KMS request bodies are small; 1 MiB bounds them generously. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** KMS accepts attestation documents at most five minutes old. */
export const MAX_RECIPIENT_ATTESTATION_AGE_MS = 5 * 60_000;

/** Options of {@link KmsSimulator.start}. */
export interface KmsSimulatorOptions {
  /** Keys, credentials and the TLS CA persist here. */
  readonly stateDirectory: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly region?: string;
  readonly account?: string;
  /** ARN the issued credentials act as, for key policy principals. */
  readonly principalArn?: string;
  /** Roots trusted for `Recipient` attestation documents (the simulated Nitro root). */
  readonly attestationRoots: readonly Uint8Array[];
  readonly clock?: () => number;
}

/** What a client needs to use the simulator; also the JSON line `nitro-infer sim kms` prints. */
export interface KmsSimulatorInfo {
  readonly endpoint: string;
  readonly caCertPath: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

interface Recipient {
  readonly publicKey: KeyObject;
  readonly conditions: ReadonlyMap<string, string>;
}

/** A running KMS simulator. */
export class KmsSimulator {
  readonly info: KmsSimulatorInfo;
  /** PEM of the TLS CA that signed the simulator's certificate. */
  readonly caCertificatePem: string;
  readonly #server: https.Server;

  private constructor(info: KmsSimulatorInfo, caCertificatePem: string, server: https.Server) {
    this.info = info;
    this.caCertificatePem = caCertificatePem;
    this.#server = server;
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: KmsSimulatorOptions): Promise<KmsSimulator> {
    const region = options.region ?? 'us-east-1';
    const account = options.account ?? '111122223333';
    const host = options.host ?? '127.0.0.1';
    await mkdir(options.stateDirectory, { recursive: true, mode: 0o700 });
    const store = await KeyStore.open(options.stateDirectory, region, account);
    const ca = await loadCa(options.stateDirectory);
    const caCertPath = path.join(options.stateDirectory, 'kms-ca.pem');
    await writeFile(caCertPath, ca.certificatePem);
    const identity = ca.issueServer([`kms.${region}.amazonaws.com`, 'localhost', host]);

    const handler = new RequestHandler(store, {
      region,
      account,
      principal: options.principalArn ?? `arn:aws:iam::${account}:role/nitro-infer-simulation`,
      roots: options.attestationRoots,
      clock: options.clock ?? Date.now,
    });
    const server = https.createServer(
      { key: identity.keyPem, cert: identity.certificatePem },
      (request, response) => {
        handler.handle(request, response).catch(() => {
          if (!response.headersSent)
            send(response, 500, { __type: 'KMSInternalException', message: 'internal error' });
        });
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    return new KmsSimulator(
      { endpoint: `https://${host}:${port}`, caCertPath, region, ...store.credentials },
      ca.certificatePem,
      server,
    );
  }

  /** Stops accepting connections and closes open ones. */
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function loadCa(directory: string): Promise<SimulatedCa> {
  const file = path.join(directory, 'kms-ca.json');
  try {
    return SimulatedCa.fromJSON(JSON.parse(await readFile(file, 'utf8')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const ca = SimulatedCa.create();
    await writeFile(file, JSON.stringify(ca.toJSON()), { mode: 0o600 });
    return ca;
  }
}

interface HandlerSettings {
  readonly region: string;
  readonly account: string;
  readonly principal: string;
  readonly roots: readonly Uint8Array[];
  readonly clock: () => number;
}

type Body = Record<string, unknown>;

class RequestHandler {
  readonly #store: KeyStore;
  readonly #settings: HandlerSettings;

  constructor(store: KeyStore, settings: HandlerSettings) {
    this.#store = store;
    this.#settings = settings;
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request);
    if (body === undefined)
      return send(response, 413, { __type: 'ValidationException', message: 'request too large' });
    const target = String(request.headers['x-amz-target'] ?? '');
    if (request.method !== 'POST' || !target.startsWith('TrentService.')) {
      return send(response, 400, { __type: 'UnknownOperationException', message: 'unknown operation' });
    }
    const failure = await verifySigV4(
      {
        method: 'POST',
        path: request.url ?? '/',
        host: String(request.headers.host ?? ''),
        headers: request.headers,
        body,
      },
      this.#store.credentials,
      this.#settings.region,
      'kms',
      this.#settings.clock(),
    );
    if (failure !== undefined)
      return send(response, failure.type === 'MissingAuthenticationTokenException' ? 403 : 400, {
        __type: failure.type,
        message: failure.message,
      });
    let input: Body;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(body).toString('utf8') || '{}');
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      input = parsed as Body;
    } catch {
      return send(response, 400, {
        __type: 'SerializationException',
        message: 'the body is not a JSON object',
      });
    }
    try {
      send(response, 200, await this.#dispatch(target.slice('TrentService.'.length), input));
    } catch (error) {
      if (error instanceof KmsException)
        return send(response, 400, { __type: error.type, message: error.message });
      throw error;
    }
  }

  async #dispatch(operation: string, input: Body): Promise<Body> {
    switch (operation) {
      case 'CreateKey': {
        const policy = optionalString(input.Policy, 'Policy');
        this.#authorize('kms:CreateKey', undefined, new Map());
        const key = await this.#store.create(policy, optionalString(input.Description, 'Description') ?? '');
        return { KeyMetadata: this.#metadata(key) };
      }
      case 'CreateAlias': {
        const key = this.#key(input.TargetKeyId);
        this.#authorize('kms:CreateAlias', key, new Map());
        await this.#store.alias(requiredString(input.AliasName, 'AliasName'), key.keyId);
        return {};
      }
      case 'DescribeKey': {
        const key = this.#key(input.KeyId);
        this.#authorize('kms:DescribeKey', key, new Map());
        return { KeyMetadata: this.#metadata(key) };
      }
      case 'GetKeyPolicy': {
        const key = this.#key(input.KeyId);
        this.#authorize('kms:GetKeyPolicy', key, new Map());
        return { Policy: key.policy, PolicyName: 'default' };
      }
      case 'PutKeyPolicy': {
        const key = this.#key(input.KeyId);
        this.#authorize('kms:PutKeyPolicy', key, new Map());
        await this.#store.putPolicy(key.keyId, requiredString(input.Policy, 'Policy'));
        return {};
      }
      case 'ReEncrypt': {
        // Decrypt under the source key and encrypt under the destination, the plaintext never leaving KMS.
        const sourceContext = encryptionContext(input.SourceEncryptionContext);
        const { key: source, plaintext } = this.#store.decrypt(
          blob(input.CiphertextBlob, 'CiphertextBlob', 1, 6144),
          sourceContext,
        );
        try {
          this.#authorize('kms:ReEncryptFrom', source, contextConditions(sourceContext));
          const destination = this.#key(input.DestinationKeyId);
          const destinationContext = encryptionContext(input.DestinationEncryptionContext);
          this.#authorize('kms:ReEncryptTo', destination, contextConditions(destinationContext));
          return {
            CiphertextBlob: this.#store
              .encrypt(destination, plaintext, destinationContext)
              .toString('base64'),
            SourceKeyId: source.arn,
            KeyId: destination.arn,
          };
        } finally {
          plaintext.fill(0);
        }
      }
      case 'Encrypt': {
        const key = this.#key(input.KeyId);
        const context = encryptionContext(input.EncryptionContext);
        const plaintext = blob(input.Plaintext, 'Plaintext', 1, 4096);
        this.#authorize('kms:Encrypt', key, contextConditions(context));
        return {
          CiphertextBlob: this.#store.encrypt(key, plaintext, context).toString('base64'),
          KeyId: key.arn,
          EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        };
      }
      case 'GenerateDataKey': {
        const key = this.#key(input.KeyId);
        const context = encryptionContext(input.EncryptionContext);
        const size = dataKeySize(input);
        const recipient = this.#recipient(input.Recipient);
        this.#authorize(
          'kms:GenerateDataKey',
          key,
          new Map([...contextConditions(context), ...(recipient?.conditions ?? [])]),
        );
        const plaintext = randomBytes(size);
        const result: Body = {
          CiphertextBlob: this.#store.encrypt(key, plaintext, context).toString('base64'),
          KeyId: key.arn,
        };
        return { ...result, ...this.#release(plaintext, recipient) };
      }
      case 'GenerateDataKeyWithoutPlaintext': {
        // A secret the caller never sees: only an attested enclave's Decrypt with Recipient releases it.
        const key = this.#key(input.KeyId);
        const context = encryptionContext(input.EncryptionContext);
        const size = dataKeySize(input);
        this.#authorize('kms:GenerateDataKeyWithoutPlaintext', key, contextConditions(context));
        const plaintext = randomBytes(size);
        try {
          return {
            CiphertextBlob: this.#store.encrypt(key, plaintext, context).toString('base64'),
            KeyId: key.arn,
          };
        } finally {
          plaintext.fill(0);
        }
      }
      case 'Decrypt': {
        const context = encryptionContext(input.EncryptionContext);
        const recipient = this.#recipient(input.Recipient);
        const { key, plaintext } = this.#store.decrypt(
          blob(input.CiphertextBlob, 'CiphertextBlob', 1, 6144),
          context,
        );
        if (input.KeyId !== undefined && this.#key(input.KeyId).keyId !== key.keyId) {
          throw new KmsException(
            'IncorrectKeyException',
            'The key ID in the request does not identify the key that encrypted the ciphertext.',
          );
        }
        this.#authorize(
          'kms:Decrypt',
          key,
          new Map([...contextConditions(context), ...(recipient?.conditions ?? [])]),
        );
        return {
          KeyId: key.arn,
          EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
          ...this.#release(plaintext, recipient),
        };
      }
      case 'GenerateRandom': {
        const size = integer(input.NumberOfBytes, 'NumberOfBytes', 1, 1024);
        const recipient = this.#recipient(input.Recipient);
        this.#authorize('kms:GenerateRandom', undefined, recipient?.conditions ?? new Map());
        return this.#release(randomBytes(size), recipient);
      }
      default:
        throw new KmsException(
          'UnknownOperationException',
          `unsupported operation ${operation.slice(0, 40)}`,
        );
    }
  }

  /** Plaintext in the clear, or only to the attested recipient (and then never in the clear). */
  #release(plaintext: Buffer, recipient: Recipient | undefined): Body {
    try {
      return recipient === undefined
        ? { Plaintext: plaintext.toString('base64') }
        : {
            CiphertextForRecipient: Buffer.from(buildCmsEnvelope(plaintext, recipient.publicKey)).toString(
              'base64',
            ),
          };
    } finally {
      plaintext.fill(0);
    }
  }

  #recipient(value: unknown): Recipient | undefined {
    if (value === undefined) return undefined;
    const recipient = value as { KeyEncryptionAlgorithm?: unknown; AttestationDocument?: unknown };
    if (
      typeof value !== 'object' ||
      value === null ||
      recipient.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256'
    ) {
      throw new KmsException(
        'ValidationException',
        'Recipient.KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256',
      );
    }
    const document = blob(recipient.AttestationDocument, 'Recipient.AttestationDocument', 1, 16 * 1024);
    let verified;
    try {
      verified = verifyAttestation(document, {
        roots: this.#settings.roots,
        at: this.#settings.clock(),
        maxAgeMs: MAX_RECIPIENT_ATTESTATION_AGE_MS,
        allowDebug: true, // debug documents are valid; their zero PCRs simply match no sound policy
      });
    } catch (error) {
      const code = isNitroInferError(error) ? error.code : 'unknown';
      throw new KmsException('ValidationException', `The attestation document is not valid (${code}).`);
    }
    const { publicKey: spki, pcrs } = verified.document;
    let publicKey: KeyObject;
    try {
      if (spki === undefined) throw new Error('absent');
      publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      if (
        publicKey.asymmetricKeyType !== 'rsa' ||
        (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048
      )
        throw new Error('not RSA-2048+');
    } catch {
      throw new KmsException(
        'ValidationException',
        'The attestation document must carry an RSA (2048 bits or more) public key.',
      );
    }
    const conditions = new Map<string, string>();
    for (const [index, value] of pcrs)
      conditions.set(`kms:RecipientAttestation:PCR${index}`, Buffer.from(value).toString('hex'));
    const pcr0 = pcrs.get(0);
    if (pcr0 !== undefined)
      conditions.set('kms:RecipientAttestation:ImageSha384', Buffer.from(pcr0).toString('hex'));
    return { publicKey, conditions };
  }

  #authorize(action: string, key: StoredKey | undefined, conditions: ReadonlyMap<string, string>): void {
    if (key === undefined) return; // CreateKey and GenerateRandom are governed by IAM alone; the caller is the account's
    const request = { action, principal: this.#settings.principal, conditions };
    if (!isAllowed(parseKeyPolicy(key.policy), request, this.#settings.account)) {
      throw new KmsException(
        'AccessDeniedException',
        `User: ${this.#settings.principal} is not authorized to perform: ${action} on resource: ${key.arn} because no resource-based policy allows the ${action} action`,
      );
    }
  }

  #key(identifier: unknown): StoredKey {
    return this.#store.find(requiredString(identifier, 'KeyId'));
  }

  #metadata(key: StoredKey): Body {
    return {
      AWSAccountId: this.#settings.account,
      KeyId: key.keyId,
      Arn: key.arn,
      CreationDate: key.creationDate / 1000,
      Enabled: true,
      Description: key.description,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: 'Enabled',
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: false,
    };
  }
}

function contextConditions(context: Readonly<Record<string, string>>): Map<string, string> {
  return new Map(Object.entries(context).map(([name, value]) => [`kms:EncryptionContext:${name}`, value]));
}

function encryptionContext(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    Object.values(value).some((entry) => typeof entry !== 'string')
  ) {
    throw new KmsException('ValidationException', 'EncryptionContext must map strings to strings');
  }
  return value as Record<string, string>;
}

function dataKeySize(input: Body): number {
  if (input.NumberOfBytes !== undefined) return integer(input.NumberOfBytes, 'NumberOfBytes', 1, 1024);
  if (input.KeySpec === 'AES_256') return 32;
  if (input.KeySpec === 'AES_128') return 16;
  throw new KmsException('ValidationException', 'Please specify either number of bytes or key spec.');
}

function requiredString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) {
    throw new KmsException('ValidationException', `${name} must be a non-empty string`);
  }
  return value;
}

function optionalString(value: unknown, name: string): string | undefined {
  return value === undefined ? undefined : requiredString(value, name);
}

function integer(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KmsException('ValidationException', `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function blob(value: unknown, name: string, min: number, max: number): Buffer {
  const bytes =
    typeof value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(value)
      ? Buffer.from(value, 'base64')
      : undefined;
  if (bytes === undefined || bytes.byteLength < min || bytes.byteLength > max) {
    throw new KmsException('ValidationException', `${name} must be base64 of ${min} to ${max} bytes`);
  }
  return bytes;
}

async function readBody(request: IncomingMessage): Promise<Uint8Array | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_REQUEST_BYTES) {
      request.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(response: ServerResponse, status: number, body: Body): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomBytes(16).toString('hex'),
  });
  response.end(text);
}
