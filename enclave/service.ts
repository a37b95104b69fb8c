/**
 * The enclave service: keys, NSM, attested KMS, model manager and inference pool, exposed as link
 * handlers. The same code runs on hardware and in simulation; only the NSM, the transport and the
 * AWS endpoints differ, and they are passed in.
 */
import { verifyAttestation } from '../shared/attestation/index.ts';
import { encodeUserData } from '../shared/binding.ts';
import { InferenceError, KmsError, LinkError } from '../shared/errors.ts';
import type { NitroInferError } from '../shared/errors.ts';
import { parseInferenceRequest } from '../shared/inference/v2.ts';
import {
  CLUSTER_KEY_BYTES,
  CLUSTER_KEY_CONTEXT,
  MAX_CLUSTER_KEY_BLOB_BYTES,
  deriveClusterKeys,
} from '../shared/cluster-key.ts';
import { MAX_ENCAPSULATED_BYTES } from '../shared/ohttp/encapsulation.ts';
import { InferenceGateway } from './gateway/inference-gateway.ts';
import { OhttpKeys } from './gateway/ohttp-keys.ts';
import { InferencePool } from './inference/pool.ts';
import { AttestedKms } from './kms/attested-kms.ts';
import { CredentialStore } from './kms/credentials.ts';
import { createKmsClient } from './kms/kms-client.ts';
import type { OpenTransport } from './kms/kms-client.ts';
import { generateEnclaveKeys } from './keys.ts';
import type { EnclaveKeys } from './keys.ts';
import { MemoryBudget } from './models/memory-budget.ts';
import { ModelManager } from './models/model-manager.ts';
import type { LoadedModel, ModelUpload } from './models/model-manager.ts';
import type { Nsm } from './nsm/index.ts';
import type { LinkHandler, Log } from './server/link-server.ts';

/** Nonces a verifier sends: 16–64 bytes (DESIGN.md 4.1). */
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;

/** Largest inference request body accepted over the link. */
export const MAX_INFERENCE_BODY_BYTES = 32 * 1024 * 1024;

/** Largest model chunk frame payload. */
export const MAX_MODEL_CHUNK_BYTES = 4 * 1024 * 1024;

/** What the service needs from outside. */
export interface EnclaveServiceOptions {
  readonly nsm: Nsm;
  /** Roots the start-up self-check verifies the NSM's first document against. */
  readonly attestationRoots: readonly Uint8Array[];
  readonly kms: {
    readonly region: string;
    readonly openTransport: OpenTransport;
    readonly extraCaCertificates?: readonly string[];
    readonly allowedKeyArns?: readonly string[];
  };
  readonly memoryBudgetBytes: number;
  readonly inferenceWorkers?: number;
  /**
   * Serve `infer` requests in plaintext over the link. Off by default: the parent must only ever
   * relay encrypted requests. For local tests and benchmarks of the engine alone.
   */
  readonly allowPlaintextInference?: boolean;
  /** Pad OHTTP responses to size buckets (default on). */
  readonly padResponses?: boolean;
  readonly log: Log;
}

/** A running enclave service. */
export interface EnclaveService {
  readonly handlers: ReadonlyMap<string, LinkHandler>;
  readonly keys: EnclaveKeys;
  readonly ohttpKeys: OhttpKeys;
  readonly models: ModelManager;
  close(): Promise<void>;
}

/**
 * Starts the service: generates keys, checks that the NSM's first document verifies against the
 * pinned root (a cheap guard against a broken NSM path or clock: refuse to serve otherwise), and
 * starts the inference workers.
 */
export async function startEnclaveService(options: EnclaveServiceOptions): Promise<EnclaveService> {
  const keys = generateEnclaveKeys();
  const selfCheck = await options.nsm.attest({ publicKey: keys.kmsRecipient.publicKeySpki });
  verifyAttestation(selfCheck, { roots: options.attestationRoots, allowDebug: true, maxAgeMs: 60_000 });

  const credentials = new CredentialStore();
  const pool = new InferencePool(
    options.inferenceWorkers === undefined ? {} : { size: options.inferenceWorkers },
  );
  const ohttpKeys = await OhttpKeys.fromKeyObject(keys.ohttp.keyConfig, keys.ohttp.privateKey, keys.receipts);
  const userData = () =>
    encodeUserData({
      ohttpKeyConfig: ohttpKeys.keyConfig,
      receiptPublicKey: ohttpKeys.receipts.publicKeyRaw,
      models: models.list().map((model) => model.identity),
    });
  const kms = new AttestedKms({
    client: createKmsClient({
      region: options.kms.region,
      openTransport: options.kms.openTransport,
      credentials,
      ...(options.kms.extraCaCertificates === undefined
        ? {}
        : { extraCaCertificates: options.kms.extraCaCertificates }),
    }),
    nsm: options.nsm,
    keys,
    userData,
  });
  // `userData` above reads `models` lazily, only once requests arrive.
  const models: ModelManager = new ModelManager({
    pool,
    budget: new MemoryBudget(options.memoryBudgetBytes),
    decrypt: (request) => kms.decrypt(request),
    ...(options.kms.allowedKeyArns === undefined ? {} : { allowedKeyArns: options.kms.allowedKeyArns }),
  });

  const handlers = new Map<string, LinkHandler>();
  handlers.set('status', async () => ({ ready: true, models: models.list().map(describeModel) }));
  // The current key config alone, for RFC 9540 discovery: no NSM round trip per request (clients
  // still verify it through an attestation before use).
  handlers.set('ohttp.config', async () => ({ keyConfig: ohttpKeys.keyConfig }));

  handlers.set('attest', async (fields) => {
    const nonce = optionalBytes(fields, 'nonce', MIN_NONCE_BYTES, MAX_NONCE_BYTES);
    const document = await options.nsm.attest({
      publicKey: keys.kmsRecipient.publicKeySpki,
      userData: userData(),
      ...(nonce === undefined ? {} : { nonce }),
    });
    return {
      document,
      keyConfig: ohttpKeys.keyConfig,
      receiptKey: ohttpKeys.receipts.publicKeyRaw,
      models: models.list().map((model) => model.identity),
    };
  });

  handlers.set('credentials', async (fields) => {
    const expiration = fields.get('expiration');
    if (expiration !== undefined && (typeof expiration !== 'number' || !Number.isSafeInteger(expiration))) {
      throw invalid('credentials.expiration must be epoch milliseconds');
    }
    const sessionToken = fields.get('sessionToken');
    credentials.set({
      accessKeyId: requiredString(fields, 'accessKeyId', 128),
      secretAccessKey: requiredString(fields, 'secretAccessKey', 256),
      ...(sessionToken === undefined ? {} : { sessionToken: requiredString(fields, 'sessionToken', 8192) }),
      ...(expiration === undefined ? {} : { expiration: new Date(expiration as number) }),
    });
    return {};
  });

  // Uploads belong to the connection that started them; a dropped connection abandons its uploads.
  const uploads = new Map<string, ModelUpload>();
  // The OHTTP cluster key (DESIGN.md 7): a KMS blob only attested enclaves can open.
  handlers.set('ohttp.key', async (fields) => {
    const blob = fields.get('blob');
    if (
      !(blob instanceof Uint8Array) ||
      blob.byteLength === 0 ||
      blob.byteLength > MAX_CLUSTER_KEY_BLOB_BYTES
    ) {
      throw invalid(`ohttp.key needs a blob of 1 to ${MAX_CLUSTER_KEY_BLOB_BYTES} bytes`);
    }
    const released = await kms.decrypt({
      CiphertextBlob: blob,
      EncryptionContext: { ...CLUSTER_KEY_CONTEXT },
    });
    const secret = released.Plaintext;
    try {
      if (options.kms.allowedKeyArns !== undefined && !options.kms.allowedKeyArns.includes(released.KeyId)) {
        throw new KmsError(
          'ERR_KMS_ACCESS_DENIED',
          'the cluster key is sealed with a key this enclave does not accept',
        );
      }
      if (secret.byteLength !== CLUSTER_KEY_BYTES) throw invalid('the cluster key must be 32 bytes');
      const cluster = deriveClusterKeys(secret);
      const keyConfig = cluster.keyConfig;
      try {
        await ohttpKeys.install(keyConfig, cluster.ohttpSecret, {
          privateKey: cluster.receiptPrivateKey,
          publicKeyRaw: cluster.receiptPublicKey,
        });
      } finally {
        cluster.ohttpSecret.fill(0);
      }
      options.log('info', 'ohttp.cluster_key_installed', { keyId: keyConfig[0] as number });
      return { keyConfig };
    } finally {
      secret.fill(0);
    }
  });

  handlers.set('model.load', async (fields, connection) => {
    const name = requiredString(fields, 'name', 128);
    const size = fields.get('size');
    if (typeof size !== 'number' || !Number.isSafeInteger(size))
      throw invalid('model.load needs a size in bytes');
    const key = `${connection.id}/${name}`;
    uploads.get(key)?.abort();
    uploads.set(key, models.beginLoad(name, size));
    connection.onClose(() => {
      uploads.get(key)?.abort();
      uploads.delete(key);
    });
    return {};
  });
  handlers.set('model.chunk', async (fields, connection) => {
    const upload = uploadOf(uploads, connection.id, requiredString(fields, 'name', 128));
    const data = fields.get('data');
    if (!(data instanceof Uint8Array) || data.byteLength === 0 || data.byteLength > MAX_MODEL_CHUNK_BYTES) {
      throw invalid(`model.chunk data must be 1 to ${MAX_MODEL_CHUNK_BYTES} bytes`);
    }
    await upload.write(data);
    return {};
  });
  handlers.set('model.end', async (fields, connection) => {
    const name = requiredString(fields, 'name', 128);
    const upload = uploadOf(uploads, connection.id, name);
    uploads.delete(`${connection.id}/${name}`);
    const model = await upload.end();
    options.log('info', 'model.loaded', { model: model.identity.name, bytes: model.sizeBytes });
    return { model: describeModel(model) };
  });
  handlers.set('model.abort', async (fields, connection) => {
    const key = `${connection.id}/${requiredString(fields, 'name', 128)}`;
    uploads.get(key)?.abort();
    uploads.delete(key);
    return {};
  });
  handlers.set('model.unload', async (fields) => {
    const name = requiredString(fields, 'name', 128);
    await models.unload(name);
    options.log('info', 'model.unloaded', { model: name });
    return {};
  });

  const gateway = new InferenceGateway({
    keys: ohttpKeys,
    pool,
    models,
    ...(options.padResponses === undefined ? {} : { padResponses: options.padResponses }),
  });
  handlers.set('ohttp', async (fields) => {
    const body = fields.get('body');
    if (!(body instanceof Uint8Array) || body.byteLength > MAX_ENCAPSULATED_BYTES) {
      throw invalid(`ohttp needs a body of at most ${MAX_ENCAPSULATED_BYTES} bytes`);
    }
    return { body: await gateway.handle(body) };
  });

  if (options.allowPlaintextInference === true) {
    handlers.set('infer', async (fields) => {
      const model = requiredString(fields, 'model', 128);
      const body = fields.get('body');
      if (!(body instanceof Uint8Array) || body.byteLength > MAX_INFERENCE_BODY_BYTES)
        throw invalid('infer needs a JSON body');
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(body).toString('utf8'));
      } catch {
        throw new InferenceError('ERR_INFERENCE_INPUT_INVALID', 'the request body is not JSON');
      }
      const response = await pool.infer(model, parseInferenceRequest(parsed));
      return { body: new TextEncoder().encode(JSON.stringify(response)) };
    });
  }

  options.log('info', 'enclave.started', {
    workers: options.inferenceWorkers ?? 0,
    plaintextInference: options.allowPlaintextInference === true,
  });
  return {
    handlers,
    keys,
    ohttpKeys,
    models,
    close: async () => {
      for (const upload of uploads.values()) upload.abort();
      await pool.close();
    },
  };
}

function describeModel(model: LoadedModel): Record<string, unknown> {
  return {
    name: model.identity.name,
    sha384: model.identity.sha384,
    bytes: model.sizeBytes,
    inputs: model.metadata.inputs.map((input) => ({ ...input, shape: [...input.shape] })),
    outputs: model.metadata.outputs.map((output) => ({ ...output, shape: [...output.shape] })),
  };
}

function uploadOf(uploads: Map<string, ModelUpload>, connection: number, name: string): ModelUpload {
  const upload = uploads.get(`${connection}/${name}`);
  if (upload === undefined) throw invalid(`no upload of model ${name} is in progress on this connection`);
  return upload;
}

function requiredString(fields: ReadonlyMap<string, unknown>, name: string, maxLength: number): string {
  const value = fields.get(name);
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw invalid(`${name} must be a string of 1 to ${maxLength} characters`);
  }
  return value;
}

function optionalBytes(
  fields: ReadonlyMap<string, unknown>,
  name: string,
  min: number,
  max: number,
): Uint8Array | undefined {
  const value = fields.get(name);
  if (value === undefined || value === null) return undefined;
  if (!(value instanceof Uint8Array) || value.byteLength < min || value.byteLength > max) {
    throw invalid(`${name} must be ${min} to ${max} bytes`);
  }
  return value;
}

function invalid(message: string): NitroInferError {
  return new LinkError('ERR_LINK_REQUEST_INVALID', message);
}
