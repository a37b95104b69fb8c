/**
 * A stand-in enclave for parent unit tests: the real LinkServer (enclave/server) on a Unix socket
 * with handlers the test chooses. No NSM, no KMS, no models.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LinkServer } from '../../enclave/server/link-server.ts';
import type { LinkHandler } from '../../enclave/server/link-server.ts';

export class FakeEnclave {
  readonly socketPath: string;
  readonly handlers = new Map<string, LinkHandler>();
  readonly received: string[] = [];
  #server: net.Server | undefined;
  #link: LinkServer | undefined;
  readonly #directory: string;

  private constructor(directory: string) {
    this.#directory = directory;
    this.socketPath = path.join(directory, 'enclave.sock');
  }

  static async create(): Promise<FakeEnclave> {
    return new FakeEnclave(await mkdtemp(path.join(os.tmpdir(), 'ni-fake-')));
  }

  /** Starts (or restarts) serving. */
  async start(): Promise<void> {
    const handlers = new Map<string, LinkHandler>();
    for (const [type, handler] of this.handlers) {
      handlers.set(type, async (fields, connection) => {
        this.received.push(type);
        return handler(fields, connection);
      });
    }
    this.#link = new LinkServer(handlers, () => {});
    this.#server = net.createServer((socket) => this.#link!.accept(socket));
    await new Promise<void>((resolve) => this.#server!.listen(this.socketPath, resolve));
  }

  /** Stops serving and drops every connection (an enclave that died). */
  async stop(): Promise<void> {
    this.#link?.close();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.#server = undefined;
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.#directory, { recursive: true, force: true });
  }
}
