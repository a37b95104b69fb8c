/**
 * The command line's error contract against an endpoint (issue 12 item 5; docs/errors.md, "Exit
 * status"): 1 refused, 2 usage or input, 3 unreachable, 4 timed out; with --json every error is
 * one object `{"error":{"code","message"}}` on stderr. The CLI runs in-process (`run`, what
 * bin/nitro-infer.js calls and prints line by line): a child process costs seconds of tsx start-up
 * on a loaded machine, and the e2e CLI test already runs the binary.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_STATUS, run } from '../../scripts/cli.ts';
import { PCR0, fakeOhttpParent } from '../helpers/ohttp-parent.ts';

const noStdin = async () => Buffer.alloc(0);
const pcr0 = Buffer.from(PCR0).toString('hex');
let scratch = '';
let parentUrl = '';
let closedUrl = '';
let silentUrl = '';
let rootPem = '';
let rootDer = '';
const servers: Server[] = [];

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'ni-cli-exit-'));
  const parent = await fakeOhttpParent();
  // The fake parent's fetch behind a real socket, so the CLI's own fetch reaches it.
  parentUrl = await listen(
    createServer((request, response) => {
      void parent.fetch(`http://parent${request.url}`).then(async (reply) => {
        response.writeHead(reply.status, { 'content-type': reply.headers.get('content-type') ?? '' });
        response.end(Buffer.from(await reply.arrayBuffer()));
      });
    }),
  );
  // Accepts connections and never answers.
  silentUrl = await listen(createServer(() => {}));
  const closed = createServer();
  closedUrl = await listen(closed);
  servers.pop();
  await new Promise((resolve) => closed.close(resolve));
  rootPem = path.join(scratch, 'root.pem');
  rootDer = path.join(scratch, 'root.der');
  await writeFile(rootPem, new X509Certificate(Buffer.from(parent.rootCertificate)).toString());
  await writeFile(rootDer, parent.rootCertificate);
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await rm(scratch, { recursive: true, force: true });
});

const attest = (endpoint: string, ...extra: string[]) =>
  run(['attest', '--endpoint', endpoint, '--expect-pcr', `0=${pcr0}`, '--root', rootPem, ...extra], noStdin);
const jsonError = (stderr: string | undefined) =>
  JSON.parse(stderr ?? '') as { error: { code: string; message: string } };

describe('CLI exit status and --json errors', () => {
  it('verified: exit 0, with the root as PEM and as DER', async () => {
    expect((await attest(parentUrl)).exitCode).toBe(EXIT_STATUS.ok);
    const der = await run(
      ['attest', '--endpoint', parentUrl, '--expect-pcr', `0=${pcr0}`, '--root', rootDer, '--json'],
      noStdin,
    );
    expect(der.exitCode).toBe(0);
    expect(JSON.parse(der.stdout ?? '')).toMatchObject({ verified: true });
  });

  it('unreachable: exit 3, ERR_CLIENT_UNREACHABLE naming the system code', async () => {
    const plain = await attest(closedUrl);
    expect(plain.exitCode).toBe(EXIT_STATUS.unreachable);
    expect(plain.stderr).toBe(`error: ERR_CLIENT_UNREACHABLE: cannot reach ${closedUrl} (ECONNREFUSED)`);
    const json = await attest(closedUrl, '--json');
    expect(json.exitCode).toBe(3);
    expect(jsonError(json.stderr)).toEqual({
      error: { code: 'ERR_CLIENT_UNREACHABLE', message: `cannot reach ${closedUrl} (ECONNREFUSED)` },
    });
  });

  it('timed out: exit 4, ERR_CLIENT_TIMEOUT', async () => {
    const result = await attest(silentUrl, '--timeout', '200ms', '--json');
    expect(result.exitCode).toBe(EXIT_STATUS.timeout);
    expect(jsonError(result.stderr).error.code).toBe('ERR_CLIENT_TIMEOUT');
  });

  it('refused: exit 1, and the PCR mismatch shows both values', async () => {
    const wrong = 'ab'.repeat(48);
    const result = await run(
      ['attest', '--endpoint', parentUrl, '--expect-pcr', `0=${wrong}`, '--root', rootPem, '--json'],
      noStdin,
    );
    expect(result.exitCode).toBe(EXIT_STATUS.refused);
    expect(jsonError(result.stderr)).toEqual({
      error: {
        code: 'ERR_ATTESTATION_PCR_MISMATCH',
        message: `PCR0 does not match: expected ${wrong}, the document has ${pcr0}`,
      },
    });
  });

  it('usage and input: exit 2, one JSON object with --json', async () => {
    const usage = await run(['attest', '--expect-pcr', `0=${pcr0}`, '--json'], noStdin);
    expect(usage.exitCode).toBe(EXIT_STATUS.usage);
    expect(jsonError(usage.stderr).error.code).toBe('ERR_CLI_USAGE');
    const unknown = await run(['frobnicate', '--json'], noStdin);
    expect(unknown.exitCode).toBe(2);
    expect(jsonError(unknown.stderr).error.code).toBe('ERR_CLI_USAGE');
    const timeout = await attest(parentUrl, '--timeout', '0', '--json');
    expect(timeout.exitCode).toBe(2);
    expect(jsonError(timeout.stderr).error.code).toBe('ERR_CLIENT_OPTIONS_INVALID');
  });

  it('a --root file that holds no certificate: exit 2, ERR_CLI_INPUT naming the file (not ROOT_UNTRUSTED)', async () => {
    const broken = path.join(scratch, 'broken.pem');
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nMIIC\n');
    const result = await run(
      ['attest', '--endpoint', parentUrl, '--expect-pcr', `0=${pcr0}`, '--root', broken, '--json'],
      noStdin,
    );
    expect(result.exitCode).toBe(2);
    const { error } = jsonError(result.stderr);
    expect(error.code).toBe('ERR_CLI_INPUT');
    expect(error.message).toContain(broken);
  });
});
