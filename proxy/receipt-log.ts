/**
 * The proxy's receipt log: JSON lines, appended as the proxy works. An `attestation` line records
 * every attestation the proxy accepted (the signed document and the key config, receipt key and
 * model list it binds); each `receipt` line is one verified inference receipt. Offline, the log
 * proves itself: each document is checked again against a PCR policy and its binding, and each
 * receipt's signature against the receipt key of the attestation before it. Editing a receipt
 * line (model, digest, hashes, time) breaks its signature; swapping in another receipt key breaks
 * the document's binding; a document from another image fails the PCR policy. The line's `path`
 * is not signed, so it must name the receipt's model (and, if versioned, its digest); a receipt
 * logged twice is refused; a log without a receipt proves nothing and is not verified.
 *
 * The log is evidence of what the enclave answered, not a complete record: each receipt is signed
 * on its own, so deleting receipt lines, truncating the log or reordering receipts under the same
 * attestation is not detectable. A hash chain written by the proxy would not change that, as whoever
 * can edit the file can recompute an unsigned chain; completeness needs the enclave to sign a
 * sequence into each receipt (a protocol change).
 */
import { appendFile } from 'node:fs/promises';
import { verifyAttestation } from '../shared/attestation/index.ts';
import { parseCoseSign1 } from '../shared/attestation/cose-sign1.ts';
import { parseAttestationPayload } from '../shared/attestation/document.ts';
import { decodeUserData, modelListDigest } from '../shared/binding.ts';
import type { ModelIdentity } from '../shared/binding.ts';
import { isNitroInferError } from '../shared/errors.ts';
import { verifyReceipt } from '../shared/receipts.ts';
import type { Receipt } from '../shared/receipts.ts';
import type { Attestation } from '../client/index.ts';

/** Most lines `verifyReceiptLog` reads (a log is rotated long before). */
export const MAX_LOG_LINES = 1_000_000;
/** Longest line accepted (a document is ~4.5 KiB, base64 a third more). */
export const MAX_LINE_CHARS = 64 * 1024;

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
/** An inference path, as the proxy forwards it: the model's name and, when pinned, its digest. */
const INFER_PATH = /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer(?:\?|$)/;

/** Appends lines to a file, one write at a time and in order. */
export class ReceiptLog {
  readonly #file: string;
  #last: Attestation | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.#file = file;
  }

  /** Records a verified receipt, after the attestation it verified under (once per attestation). */
  record(attestation: Attestation, entry: { path: string; receipt: string; time: number }): Promise<void> {
    const lines: string[] = [];
    if (this.#last !== attestation) {
      this.#last = attestation;
      lines.push(
        JSON.stringify({
          type: 'attestation',
          time: attestation.verifiedAt,
          document: b64(attestation.document),
          keyConfig: b64(attestation.keyConfigBytes),
          receiptKey: b64(attestation.receiptKey),
          models: attestation.models,
        }),
      );
    }
    lines.push(
      JSON.stringify({ type: 'receipt', time: entry.time, path: entry.path, receipt: entry.receipt }),
    );
    const text = lines.map((line) => `${line}\n`).join('');
    const write = this.#queue.then(() => appendFile(this.#file, text, { mode: 0o600 }));
    this.#queue = write.catch(() => {});
    return write;
  }
}

/** What an offline check needs: the PCR policy and the roots to trust. */
export interface LogPolicy {
  readonly expectedPcrs: ReadonlyMap<number, Uint8Array>;
  readonly roots: readonly Uint8Array[];
  readonly allowDebug?: boolean;
}

/** The outcome of an offline check. */
export interface LogVerdict {
  readonly ok: boolean;
  readonly attestations: number;
  readonly receipts: number;
  /** One entry per failing line: its number (from 1) and why. */
  readonly failures: readonly { readonly line: number; readonly reason: string }[];
}

interface Attested {
  readonly receiptKey: Uint8Array;
  readonly keyConfig: Uint8Array;
  readonly models: readonly ModelIdentity[];
}

/** Checks a receipt log's text offline; never throws on bad content, it reports it by line. */
export function verifyReceiptLog(text: string, policy: LogPolicy): LogVerdict {
  const failures: { line: number; reason: string }[] = [];
  let attested: Attested | undefined;
  let attestations = 0;
  let receipts = 0;
  /** Every receipt seen, by its signed content (a re-encoding of the same receipt is the same). */
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines.length > MAX_LOG_LINES + 1) {
    return {
      ok: false,
      attestations,
      receipts,
      failures: [{ line: 0, reason: `more than ${MAX_LOG_LINES} lines` }],
    };
  }
  lines.forEach((line, index) => {
    const number = index + 1;
    if (line.trim() === '') return;
    try {
      if (line.length > MAX_LINE_CHARS) throw new Error(`longer than ${MAX_LINE_CHARS} characters`);
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.type === 'attestation') {
        // A line that fails leaves no key behind: receipts after it fail too rather than verify
        // against an earlier attestation.
        attested = undefined;
        attested = checkAttestation(entry, policy);
        attestations++;
      } else if (entry.type === 'receipt') {
        if (attested === undefined) throw new Error('no verified attestation before this receipt');
        if (typeof entry.receipt !== 'string') throw new Error('no receipt');
        const receipt = verifyReceipt(entry.receipt, attested.receiptKey, { keyConfig: attested.keyConfig });
        const identity = attested.models.find((model) => model.name === receipt.model);
        if (identity?.sha384.toLowerCase() !== receipt.sha384.toLowerCase())
          throw new Error(`receipt for ${receipt.model} names a digest the attestation does not list`);
        if (entry.time !== receipt.time) throw new Error('the line time is not the signed time');
        checkPath(entry.path, receipt);
        const key = receiptKeyOf(receipt);
        if (seen.has(key)) throw new Error('the same receipt as an earlier line');
        seen.add(key);
        receipts++;
      } else {
        throw new Error('unknown line type');
      }
    } catch (error) {
      const reason = isNitroInferError(error)
        ? `${error.code}: ${error.message}`
        : error instanceof SyntaxError
          ? 'not JSON'
          : error instanceof Error
            ? error.message
            : String(error);
      failures.push({ line: number, reason: reason.slice(0, 300) });
    }
  });
  // Attestations alone say which enclave was reached, not that it answered anything. (Said only
  // when no line failed: otherwise the failures already say why.)
  if (receipts === 0 && failures.length === 0)
    failures.push({ line: 0, reason: 'no receipts: the log proves no answer' });
  return { ok: failures.length === 0, attestations, receipts, failures };
}

/** The unsigned `path` must name the model the receipt signs (and its digest when versioned). */
function checkPath(path: unknown, receipt: Receipt): void {
  if (typeof path !== 'string') throw new Error('no path');
  const match = INFER_PATH.exec(path);
  let name: string | undefined;
  try {
    name = match?.[1] === undefined ? undefined : decodeURIComponent(match[1]);
  } catch {
    name = undefined;
  }
  const version = match?.[2];
  if (
    name !== receipt.model ||
    (version !== undefined && version.toLowerCase() !== receipt.sha384.toLowerCase())
  )
    throw new Error(`the path does not name the receipt's model ${receipt.model}`);
}

function receiptKeyOf(receipt: Receipt): string {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  return JSON.stringify([
    receipt.model,
    receipt.sha384.toLowerCase(),
    hex(receipt.requestSha256),
    hex(receipt.responseSha256),
    receipt.time,
    hex(receipt.keyConfigSha256),
  ]);
}

function checkAttestation(entry: Record<string, unknown>, policy: LogPolicy): Attested {
  const field = (name: string) => {
    const value = entry[name];
    if (typeof value !== 'string') throw new Error(`no ${name}`);
    return new Uint8Array(Buffer.from(value, 'base64'));
  };
  const document = field('document');
  // Offline there is no nonce to expect and the document is old by now: check it as of its own
  // signing time, so the chain, signature and PCRs are judged as they were then.
  const timestamp = timestampOf(document);
  const verified = verifyAttestation(document, {
    roots: policy.roots,
    at: timestamp,
    expectedPcrs: policy.expectedPcrs,
    allowDebug: policy.allowDebug === true,
  });
  const userData = verified.document.userData;
  if (userData === undefined) throw new Error('the document binds no user_data');
  const binding = decodeUserData(userData);
  const keyConfig = field('keyConfig');
  const receiptKey = field('receiptKey');
  if (!Array.isArray(entry.models)) throw new Error('no models');
  const models = (entry.models as unknown[]).map((model) => {
    const { name, sha384 } = (model ?? {}) as { name?: unknown; sha384?: unknown };
    if (typeof name !== 'string' || typeof sha384 !== 'string') throw new Error('a model entry is malformed');
    return { name, sha384 };
  });
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
  if (!same(keyConfig, binding.ohttpKeyConfig))
    throw new Error('the key config is not the one the document binds');
  if (!same(receiptKey, binding.receiptPublicKey))
    throw new Error('the receipt key is not the one the document binds');
  if (!same(modelListDigest(models), binding.modelsDigest))
    throw new Error('the model list is not the one the document binds');
  return { receiptKey, keyConfig, models };
}

/**
 * The document's own signing time, read before verification only to choose the instant at which
 * verifyAttestation then checks everything (the parsers are the verifier's own, bounded).
 */
function timestampOf(document: Uint8Array): number {
  return parseAttestationPayload(parseCoseSign1(document).payload).timestamp;
}
