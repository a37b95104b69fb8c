/**
 * `nitro-infer sim` — what `npm start` runs: the whole system on this machine. Simulated Nitro PKI
 * and NSM, the KMS simulator with a key whose policy pins this checkout's PCR0, the enclave as a
 * child process (in its own network namespace when possible), the parent on 127.0.0.1:8080, the
 * example models sealed and loaded, and one self-check inference through the client SDK compared
 * with onnxruntime-node run directly. Serves until Ctrl-C, which stops every child.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import ort from 'onnxruntime-node';
import { pino } from 'pino';
import { createClient } from '../client/index.ts';
import { CliError } from '../shared/errors.ts';
import { createSealStream } from '../shared/sealing/index.ts';
import { exampleDenseModel, ocrClassifierModel } from '../sim/example-models.ts';
import type { ExampleModel } from '../sim/example-models.ts';
import type { EnclaveRestartEvent } from '../sim/enclave-process.ts';
import { startLocalStack } from '../sim/local-stack.ts';
import type { LocalStack } from '../sim/local-stack.ts';
import { acquireStateLock } from '../sim/state-lock.ts';
import { exitWhenParentExits } from './parent-death.ts';
import { parseFlags } from './cli-input.ts';
import { SIM_HELP } from './sim-help.ts';

export async function simStack(
  args: readonly string[],
  print: (line: string) => void,
  stopped: Promise<void>,
): Promise<number> {
  const { values } = parseFlags(
    args,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      'state-dir': { type: 'string' },
      json: { type: 'boolean' },
    },
    false,
  );
  if (values.help === true) {
    print(SIM_HELP);
    return 0;
  }
  // `npm start --port 9000` (without `--`) reaches us as npm's config `port`: npm puts it in
  // npm_config_port rather than passing the flag on, so take it from there too.
  const portText = values.port ?? process.env.NITRO_INFER_HTTP_PORT ?? process.env.npm_config_port ?? '8080';
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535)
    throw new CliError('ERR_CLI_USAGE', `--port ${portText} is not a port`);
  const state = path.resolve(values['state-dir'] ?? '.nitro-infer/sim');
  // Unix socket paths live in the state directory; sun_path holds 107 bytes.
  if (Buffer.byteLength(path.join(state, 'enclave.sock')) > 107) {
    throw new CliError(
      'ERR_CLI_USAGE',
      `--state-dir ${state} is too long for Unix socket paths; choose a shorter one`,
    );
  }
  await mkdir(path.join(state, 'models'), { recursive: true, mode: 0o700 });
  // Started by npm or npx, the stack must stop when they do (they do not pass SIGTERM on).
  exitWhenParentExits();
  const lock = await acquireStateLock(state);
  let stack: LocalStack;
  try {
    stack = await startLocalStack({
      stateDirectory: state,
      httpPort: Number(portText),
      ...(values.host === undefined ? {} : { httpHost: values.host }),
      logger: pino({ level: 'warn' }, pino.destination(path.join(state, 'parent.log'))),
      enclaveRestart: { report: (event) => print(describeRestart(event)) },
    });
  } catch (error) {
    await lock.release();
    throw error;
  }
  try {
    const models: ExampleModel[] = [exampleDenseModel()];
    const ocr = await ocrClassifierModel();
    if (ocr !== undefined) models.push(ocr);
    const admin = { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' };
    for (const model of models) {
      const sha384 = createHash('sha384').update(model.bytes).digest('hex');
      const sealer = createSealStream({
        kms: stack.operator,
        keyArn: stack.keyArn,
        model: { name: model.name, sha384 },
      });
      Readable.from([model.bytes]).pipe(sealer);
      const file = path.join(state, 'models', `${model.name}.sealed`);
      await writeFile(file, await buffer(sealer));
      await writeFile(path.join(state, `${model.name}-input.json`), `${JSON.stringify(model.request)}\n`);
      const loaded = await fetch(`${stack.url}/admin/models/${model.name}`, {
        method: 'PUT',
        headers: admin,
        body: JSON.stringify({ source: `file://${file}` }),
      });
      if (loaded.status !== 200)
        throw new Error(`loading ${model.name} failed: ${loaded.status} ${await loaded.text()}`);
    }

    // Self-check: the SDK verifies the enclave, infers end to end, verifies the receipt; the
    // outputs must equal onnxruntime-node run directly on the plaintext model.
    const example = models[0] as ExampleModel;
    const client = createClient({
      endpoint: stack.url,
      policy: {
        pcrs: (await import('node:fs')).readFileSync(stack.files.pcrs, 'utf8'),
        roots: [stack.pki.rootCertificate],
      },
    });
    const result = await client.infer(example.name, example.request);
    // The self-check's connection is not needed while the stack serves.
    client.close();
    const session = await ort.InferenceSession.create(example.bytes);
    const input = example.request.inputs[0]!;
    const direct = await session.run({
      [input.name]: new ort.Tensor('float32', Float32Array.from(input.data), input.shape),
    });
    const expected = [...((Object.values(direct)[0] as ort.Tensor).data as Float32Array)];
    const got = result.response.outputs[0]?.data as number[];
    const difference = Math.max(
      ...expected.map((value, index) => Math.abs(value - (got[index] ?? Number.NaN))),
    );
    await session.release();
    if (!(difference <= 1e-5))
      throw new Error(`self-check failed: outputs differ from onnxruntime-node by ${difference}`);

    const relative = (file: string) => {
      const shortened = path.relative(process.cwd(), file);
      return shortened === '' || shortened.startsWith('..') ? file : shortened;
    };
    const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
    // An operator's environment for `nitro-infer seal` against the simulated KMS.
    const operatorEnv = path.join(state, 'operator.env');
    await writeFile(
      operatorEnv,
      [
        `export AWS_REGION=${stack.region}`,
        `export AWS_ACCESS_KEY_ID=${stack.kms.info.accessKeyId}`,
        `export AWS_SECRET_ACCESS_KEY=${stack.kms.info.secretAccessKey}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const sealCommand = `(. ${relative(operatorEnv)} && npx nitro-infer seal model.onnx --name my-model --key ${stack.keyArn} --out my-model.sealed --kms-endpoint ${stack.kms.info.endpoint} --kms-ca ${relative(stack.kms.info.caCertPath)})`;
    const inferCommand = `npx nitro-infer infer --endpoint ${stack.url} --model ${example.name} --input ${relative(path.join(state, `${example.name}-input.json`))} --pcrs ${relative(stack.files.pcrs)} --root ${relative(stack.files.root)}`;
    if (values.json === true) {
      print(
        JSON.stringify({
          ready: 'sim',
          endpoint: stack.url,
          pcrs: {
            PCR0: hex(stack.measurements.pcr0),
            PCR1: hex(stack.measurements.pcr1),
            PCR2: hex(stack.measurements.pcr2),
          },
          files: { ...stack.files, state },
          models: models.map((model) => model.name),
          enclavePid: stack.enclave.pid,
          isolatedNetwork: stack.enclave.isolated,
          selfCheck: {
            model: example.name,
            maxDifference: difference,
            receiptModelSha384: result.receipt.sha384,
          },
          inferCommand,
          sealCommand,
          keyArn: stack.keyArn,
          kms: { endpoint: stack.kms.info.endpoint, caCertPath: stack.kms.info.caCertPath, operatorEnv },
          adminTokensFile: stack.files.adminTokens,
        }),
      );
    } else {
      print(
        [
          'nitro-infer local stack is up',
          `  endpoint         ${stack.url}`,
          `  PCR0             ${hex(stack.measurements.pcr0)}`,
          `  PCR1             ${hex(stack.measurements.pcr1)}`,
          `  PCR2             ${hex(stack.measurements.pcr2)}`,
          `  enclave          pid ${stack.enclave.pid}${stack.enclave.isolated ? ', own network namespace (reaches only its sockets)' : ''}`,
          `  models           ${models.map((model) => model.name).join(', ')} (sealed with ${stack.keyArn})`,
          `  self-check       attested, inferred end to end, receipt verified; outputs equal onnxruntime-node (max diff ${difference})`,
          `  state directory  ${relative(state)}  (simulated root: ${relative(stack.files.root)}, pcrs.json: ${relative(stack.files.pcrs)})`,
          '',
          'Try it:',
          `  ${inferCommand}`,
          `  npx nitro-infer attest --endpoint ${stack.url} --pcrs ${relative(stack.files.pcrs)} --root ${relative(stack.files.root)}`,
          `  npx nitro-infer models list --endpoint ${stack.url} --token-file ${relative(stack.files.adminTokens)}`,
          '',
          'Seal and load your own model (the simulated KMS releases its key only to this enclave):',
          `  ${sealCommand}`,
          `  npx nitro-infer models load my-model file://$PWD/my-model.sealed --endpoint ${stack.url} --token-file ${relative(stack.files.adminTokens)}`,
          '',
          'Ctrl-C stops everything.',
        ].join('\n'),
      );
    }
    await stopped;
  } finally {
    await stack.close();
    await lock.release();
  }
  return 0;
}

/** One terminal line per supervisor event; the parent reloads the models once the link is back. */
function describeRestart(event: EnclaveRestartEvent): string {
  switch (event.kind) {
    case 'exited':
      return `enclave exited (${event.reason}); restarting in ${event.restartInMs} ms (attempt ${event.attempt}); the parent reloads its models once it is back`;
    case 'restarted':
      return `enclave restarted (pid ${event.pid}); the parent is reconnecting and reloading models`;
    case 'restart_failed':
      return `enclave restart failed: ${event.reason}`;
  }
}
