/**
 * Verbs that talk to a running deployment through the client SDK: `attest --endpoint` (verify the
 * enclave behind a parent) and `infer` (one end-to-end encrypted V2 inference).
 */
import { writeFile } from 'node:fs/promises';
import { CliError } from '../shared/errors.ts';
import { parseFlags, readJsonInput } from './cli-input.ts';
import type { CommandOutput } from './cli-output.ts';
import { responseAsJson, tensorDataBytes } from '../client/tensors.ts';
import type { ClientInferenceRequest } from '../client/tensors.ts';
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, clientFromFlags } from './client-flags.ts';

/** Above this much tensor data, `infer` sends binary tensors without being asked (JSON costs more). */
export const AUTO_BINARY_BYTES = 64 * 1024;

export const ATTEST_REMOTE_HELP = `Usage: nitro-infer attest --endpoint <url> (--pcrs <file> | --expect-pcr <i>=<hex>) [options]
       nitro-infer attest verify <file|->   (offline; see \`nitro-infer attest verify --help\`)

Asks the enclave behind <url> for a fresh attestation (new random nonce) and verifies it: the AWS
chain (or --root), the PCRs, the nonce, its age, and that the OHTTP key config, receipt key and
model list served beside it are the ones the document binds.

Options:
${CLIENT_FLAGS_HELP}
  --json                    print one JSON object
  -h, --help                show this help

Exit status: 0 verified, 1 refused (the error code is printed), 2 usage or input error,
3 endpoint unreachable, 4 --timeout passed. With --json, errors are {"error":{"code","message"}}
on stderr.`;

export const INFER_HELP = `Usage: nitro-infer infer --endpoint <url> --model <name> --input <file|-> (--pcrs <file> | --expect-pcr <i>=<hex>) [options]

Verifies the enclave, then sends one Open Inference Protocol v2 request (JSON: {"inputs": [...]})
encrypted end to end with Oblivious HTTP; prints the V2 JSON response. The parent relays bytes it
cannot read. The response's signed receipt is verified (model, digest, request and response hashes).

Options:
  --model <name>            the model to run
  --input <file|->          the V2 request JSON
  --receipt <file>          save the verified receipt (JSON with the encoded receipt)
  --binary                  send the tensors with the binary tensor data extension (default above
                            64 KiB of tensor data); outputs are still printed as JSON
${CLIENT_FLAGS_HELP}
  --json                    print the response as compact JSON (and errors as one JSON object)
  -h, --help                show this help

Exit status: 0 answered, 1 refused, 2 usage, input or a service error, 3 endpoint unreachable,
4 --timeout passed.`;

function parse(
  args: readonly string[],
  extra: Record<string, { type: 'string' | 'boolean'; short?: string }>,
) {
  return parseFlags(args, { ...CLIENT_FLAGS, ...extra, json: { type: 'boolean' } }).values as Record<
    string,
    string | boolean | string[] | undefined
  >;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

export async function attestRemote(args: readonly string[]): Promise<CommandOutput> {
  const values = parse(args, {});
  if (values.help === true) return { exitCode: 0, stdout: ATTEST_REMOTE_HELP };
  const client = await clientFromFlags(values);
  const attestation = await client.attest();
  const summary = {
    verified: true,
    moduleId: attestation.moduleId,
    pcrs: Object.fromEntries(
      [...attestation.pcrs]
        .filter(([index]) => index <= 8)
        .map(([index, value]) => [String(index), hex(value)]),
    ),
    keyConfig: hex(attestation.keyConfigBytes),
    receiptKey: hex(attestation.receiptKey),
    models: attestation.models,
  };
  if (values.json === true) return { exitCode: 0, stdout: JSON.stringify(summary) };
  return {
    exitCode: 0,
    stdout: [
      'verified enclave',
      `  module id    ${summary.moduleId}`,
      ...Object.entries(summary.pcrs)
        .filter(([index]) => ['0', '1', '2', '8'].includes(index))
        .map(([index, value]) => `  PCR${index.padEnd(10)}${value}`),
      `  OHTTP key    ${summary.keyConfig}`,
      `  receipt key  ${summary.receiptKey}`,
      `  models       ${summary.models.length === 0 ? '(none loaded)' : summary.models.map((model) => `${model.name} (sha384 ${model.sha384.slice(0, 16)}…)`).join(', ')}`,
    ].join('\n'),
  };
}

export async function infer(args: readonly string[], stdin: () => Promise<Buffer>): Promise<CommandOutput> {
  const values = parse(args, {
    model: { type: 'string' },
    input: { type: 'string' },
    receipt: { type: 'string' },
    binary: { type: 'boolean' },
  });
  if (values.help === true) return { exitCode: 0, stdout: INFER_HELP };
  if (typeof values.model !== 'string') throw new CliError('ERR_CLI_USAGE', '--model <name> is required');
  if (typeof values.input !== 'string') throw new CliError('ERR_CLI_USAGE', '--input <file|-> is required');
  const request = await readJsonInput(values.input, stdin);
  if (
    typeof request !== 'object' ||
    request === null ||
    !Array.isArray((request as { inputs?: unknown }).inputs)
  ) {
    throw new CliError('ERR_CLI_INPUT', 'the input must be a V2 request: {"inputs": [...]}');
  }
  const client = await clientFromFlags(values);
  const binary =
    values.binary === true || tensorDataBytes(request as ClientInferenceRequest) > AUTO_BINARY_BYTES;
  const result = await client.infer(values.model, request as ClientInferenceRequest, { binary });
  if (typeof values.receipt === 'string') {
    await writeFile(
      values.receipt,
      `${JSON.stringify(
        {
          receipt: result.receiptEncoded,
          model: result.receipt.model,
          sha384: result.receipt.sha384,
          time: new Date(result.receipt.time).toISOString(),
          requestSha256: hex(result.receipt.requestSha256),
          responseSha256: hex(result.receipt.responseSha256),
          receiptKey: hex(client.attestation!.receiptKey),
        },
        null,
        2,
      )}\n`,
    );
  }
  return {
    exitCode: 0,
    stdout: JSON.stringify(responseAsJson(result.response), null, values.json === true ? undefined : 2),
  };
}
