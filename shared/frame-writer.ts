/**
 * Writes frames to a stream, coalescing small ones: vsock throughput drops sharply with small
 * writes, so frames written in the same turn of the event loop go out as one write of up to
 * {@link COALESCE_BYTES}, while large frames are written as they are (no copy).
 */
import type { Writable } from 'node:stream';

/** Frames are gathered until this many bytes are pending (DESIGN.md 4.5: ≥ 32 KiB writes). */
export const COALESCE_BYTES = 32 * 1024;

/** A coalescing writer for one connection. */
export class FrameWriter {
  readonly #stream: Writable;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #drain: Promise<void> | undefined;

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  /** Queues an encoded frame. Returns false when the caller should wait for {@link drained}. */
  write(frame: Buffer): boolean {
    if (this.#stream.destroyed) return false;
    if (frame.byteLength >= COALESCE_BYTES) {
      this.flush();
      return this.#stream.write(frame);
    }
    this.#pending.push(frame);
    this.#pendingBytes += frame.byteLength;
    if (this.#pendingBytes >= COALESCE_BYTES) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
    return !this.#stream.writableNeedDrain;
  }

  /** Writes whatever is pending now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#pendingBytes === 0 || this.#stream.destroyed) return;
    const batch =
      this.#pending.length === 1
        ? (this.#pending[0] as Buffer)
        : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#stream.write(batch);
  }

  /** Resolves when the stream can take more (at once if it can now). Waiters share one listener. */
  async drained(): Promise<void> {
    if (!this.#stream.writableNeedDrain || this.#stream.destroyed) return;
    this.#drain ??= new Promise<void>((resolve) => {
      const done = () => {
        this.#stream.off('drain', done);
        this.#stream.off('close', done);
        this.#drain = undefined;
        resolve();
      };
      this.#stream.on('drain', done);
      this.#stream.on('close', done);
    });
    await this.#drain;
  }
}
