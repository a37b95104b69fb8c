/** A minimal link client for tests: one connection, requests matched to responses by id. */
import net from 'node:net';
import { RESPONSE_HEADER_LIMITS } from '../../shared/frame-layout.ts';
import { FrameDecoder, encodeFrame } from '../../shared/frames.ts';

export interface LinkResponse {
  readonly type: string;
  readonly fields: ReadonlyMap<string, unknown>;
}

export class TestLinkClient {
  readonly socket: net.Socket;
  readonly #pending = new Map<number, (response: LinkResponse) => void>();
  #nextId = 1;
  readonly closed: Promise<void>;
  /** The code of a connection-level error frame (id 0) the server sent before closing, if any. */
  connectionError: string | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder(RESPONSE_HEADER_LIMITS);
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.id === 0 && frame.type === 'error') this.connectionError = String(frame.fields.get('code'));
        this.#pending.get(frame.id)?.({ type: frame.type, fields: frame.fields });
        this.#pending.delete(frame.id);
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(path: string): Promise<TestLinkClient> {
    const socket = net.connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new TestLinkClient(socket);
  }

  request(type: string, fields: Record<string, unknown> = {}): Promise<LinkResponse> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.socket.cork();
      for (const piece of encodeFrame(id, type, fields)) this.socket.write(piece);
      this.socket.uncork();
    });
  }

  /** Resolves to the response's code when it is an error, else 'ok'. */
  async code(type: string, fields: Record<string, unknown> = {}): Promise<string> {
    const response = await this.request(type, fields);
    return response.type === 'error' ? String(response.fields.get('code')) : response.type;
  }

  /** Streams a sealed artifact as model.load / model.chunk… / model.end, `window` chunks in flight. */
  async upload(
    name: string,
    artifact: Uint8Array,
    chunkBytes = 256 * 1024,
    window = 8,
  ): Promise<LinkResponse> {
    const started = await this.request('model.load', { name, size: artifact.byteLength });
    if (started.type === 'error') return started;
    const inFlight = new Set<Promise<LinkResponse>>();
    let failure: LinkResponse | undefined;
    for (let offset = 0; offset < artifact.byteLength && failure === undefined; offset += chunkBytes) {
      const pending = this.request('model.chunk', {
        name,
        data: artifact.subarray(offset, offset + chunkBytes),
      });
      inFlight.add(pending);
      void pending.then((response) => {
        inFlight.delete(pending);
        if (response.type === 'error') failure ??= response;
      });
      if (inFlight.size >= window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure !== undefined) return failure;
    return this.request('model.end', { name });
  }

  close(): void {
    this.socket.destroy();
  }
}
