/**
 * The KMS simulator's keys: symmetric 256-bit keys with their policies, kept in a state directory
 * so that a restarted simulator still decrypts what it encrypted.
 *
 * Ciphertext blobs follow KMS's idea (the key is identified inside the blob, the encryption
 * context is authenticated but not stored): `version(1) ‖ key uuid(16) ‖ iv(12) ‖ tag(16) ‖ data`,
 * AES-256-GCM with the canonical encryption context as additional data.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseKeyPolicy } from './key-policy.ts';

const BLOB_VERSION = 1;
const HEADER_BYTES = 1 + 16 + 12 + 16;

/** What DescribeKey reports. */
export interface StoredKey {
  readonly keyId: string;
  readonly arn: string;
  readonly description: string;
  readonly policy: string;
  readonly creationDate: number;
  /** Base64 key material; the state directory is the simulator's alone (mode 0600). */
  readonly material: string;
}

interface StoreFile {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly keys: StoredKey[];
  readonly aliases: Record<string, string>;
}

/** A failure with a KMS exception name. */
export class KmsException extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/** Canonical encryption context bytes: keys sorted, as JSON. */
export function canonicalContext(context: Readonly<Record<string, string>>): Buffer {
  return Buffer.from(
    JSON.stringify(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  );
}

/** The simulator's persistent state. */
export class KeyStore {
  readonly #file: string;
  readonly #region: string;
  readonly #account: string;
  #state: StoreFile;

  private constructor(file: string, region: string, account: string, state: StoreFile) {
    this.#file = file;
    this.#region = region;
    this.#account = account;
    this.#state = state;
  }

  /** Opens (or creates) the store in `directory`. */
  static async open(directory: string, region: string, account: string): Promise<KeyStore> {
    const file = path.join(directory, 'kms-keys.json');
    let state: StoreFile;
    try {
      state = JSON.parse(await readFile(file, 'utf8')) as StoreFile;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      state = {
        accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
        secretAccessKey: randomBytes(30).toString('base64'),
        keys: [],
        aliases: {},
      };
    }
    const store = new KeyStore(file, region, account, state);
    await store.#save();
    return store;
  }

  get credentials(): { accessKeyId: string; secretAccessKey: string } {
    return { accessKeyId: this.#state.accessKeyId, secretAccessKey: this.#state.secretAccessKey };
  }

  async create(policy: string | undefined, description: string): Promise<StoredKey> {
    const keyId = randomUUID();
    const key: StoredKey = {
      keyId,
      arn: `arn:aws:kms:${this.#region}:${this.#account}:key/${keyId}`,
      description,
      policy: policy ?? this.#defaultPolicy(),
      creationDate: Date.now(),
      material: randomBytes(32).toString('base64'),
    };
    try {
      parseKeyPolicy(key.policy);
    } catch (error) {
      throw new KmsException(
        'MalformedPolicyDocumentException',
        `The new key policy is invalid: ${(error as Error).message}`,
      );
    }
    this.#state.keys.push(key);
    await this.#save();
    return key;
  }

  /** Replaces a key's policy (PutKeyPolicy): the administrators' `kms:Put*` power the cluster key must not rest on. */
  async putPolicy(keyId: string, policy: string): Promise<StoredKey> {
    try {
      parseKeyPolicy(policy);
    } catch (error) {
      throw new KmsException(
        'MalformedPolicyDocumentException',
        `The new key policy is invalid: ${(error as Error).message}`,
      );
    }
    const index = this.#state.keys.findIndex((candidate) => candidate.keyId === keyId);
    const key = { ...this.find(keyId), policy };
    this.#state = { ...this.#state, keys: this.#state.keys.map((entry, at) => (at === index ? key : entry)) };
    await this.#save();
    return key;
  }

  async alias(name: string, keyId: string): Promise<void> {
    if (!/^alias\/[a-zA-Z0-9/_-]{1,250}$/.test(name) || name.startsWith('alias/aws/')) {
      throw new KmsException('ValidationException', 'alias name is not valid');
    }
    this.find(keyId);
    this.#state.aliases[name] = keyId;
    await this.#save();
  }

  /** Resolves a key id, key ARN, alias name or alias ARN. */
  find(identifier: string): StoredKey {
    const aliasName = /^arn:aws:kms:[^:]+:\d{12}:(alias\/.+)$/.exec(identifier)?.[1] ?? identifier;
    const keyId = aliasName.startsWith('alias/')
      ? this.#state.aliases[aliasName]
      : identifier.replace(/^arn:aws:kms:[^:]+:\d{12}:key\//, '');
    const key = this.#state.keys.find((candidate) => candidate.keyId === keyId);
    if (key === undefined) throw new KmsException('NotFoundException', `Key '${identifier}' does not exist`);
    return key;
  }

  encrypt(key: StoredKey, plaintext: Uint8Array, context: Readonly<Record<string, string>>): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', Buffer.from(key.material, 'base64'), iv);
    cipher.setAAD(canonicalContext(context));
    const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const uuid = Buffer.from(key.keyId.replace(/-/g, ''), 'hex');
    return Buffer.concat([Buffer.from([BLOB_VERSION]), uuid, iv, cipher.getAuthTag(), data]);
  }

  /** Returns the key a blob names and its plaintext; any mismatch is InvalidCiphertextException. */
  decrypt(
    blob: Uint8Array,
    context: Readonly<Record<string, string>>,
  ): { key: StoredKey; plaintext: Buffer } {
    const invalid = () => new KmsException('InvalidCiphertextException', '');
    if (blob.byteLength < HEADER_BYTES || blob[0] !== BLOB_VERSION) throw invalid();
    const hexId = Buffer.from(blob.subarray(1, 17)).toString('hex');
    const keyId = `${hexId.slice(0, 8)}-${hexId.slice(8, 12)}-${hexId.slice(12, 16)}-${hexId.slice(16, 20)}-${hexId.slice(20)}`;
    let key: StoredKey;
    try {
      key = this.find(keyId);
    } catch {
      throw invalid();
    }
    try {
      const decipher = createDecipheriv(
        'aes-256-gcm',
        Buffer.from(key.material, 'base64'),
        blob.subarray(17, 29),
      );
      decipher.setAAD(canonicalContext(context));
      decipher.setAuthTag(blob.subarray(29, 45));
      return { key, plaintext: Buffer.concat([decipher.update(blob.subarray(45)), decipher.final()]) };
    } catch {
      throw invalid();
    }
  }

  #defaultPolicy(): string {
    // KMS's default key policy: the account's IAM decides.
    return JSON.stringify({
      Version: '2012-10-17',
      Id: 'key-default-1',
      Statement: [
        {
          Sid: 'Enable IAM User Permissions',
          Effect: 'Allow',
          Principal: { AWS: `arn:aws:iam::${this.#account}:root` },
          Action: 'kms:*',
          Resource: '*',
        },
      ],
    });
  }

  async #save(): Promise<void> {
    // Write-then-rename, so a crash never leaves a half-written key file.
    const temporary = `${this.#file}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify(this.#state, null, 2), { mode: 0o600 });
    await rename(temporary, this.#file);
  }
}
