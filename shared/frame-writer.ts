/**
 * Writes frames to a stream, coalescing small ones: vsock throughput drops sharply with small
 * writes, so frames written in the same turn of the event loop go out as one write of up to
 * {@link COALESCE_BYTES}, while a large frame's pieces (lengths and header, then the payload)
 * go out corked, as one `writev`, without being joined (no copy of the payload).
 */
import type { Writable } from 'node:stream';
import type { FramePieces } from './frames.ts';

/** Frames are gathered until this many bytes are pending (DESIGN.md 4.5: ≥ 32 KiB writes). */
export const COALESCE_BYTES = 32 * 1024;

/** A coalescing writer for one connection. */
export class FrameWriter {
  readonly #stream: Writable;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #drain: Promise<void> | undefined;

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  /** Queues an encoded frame. Returns false when the caller should wait for {@link drained}. */
  write(frame: FramePieces): boolean {
    if (this.#stream.destroyed) return false;
    let frameBytes = 0;
    for (const piece of frame) frameBytes += piece.byteLength;
    if (frameBytes >= COALESCE_BYTES) {
      // Pending small frames first, then this frame's pieces, all in one corked batch.
      this.#stream.cork();
      this.flush();
      for (const piece of frame) this.#stream.write(piece);
      this.#stream.uncork();
      return !this.#stream.writableNeedDrain;
    }
    for (const piece of frame) this.#pending.push(piece);
    this.#pendingBytes += frameBytes;
    if (this.#pendingBytes >= COALESCE_BYTES) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
    return !this.#stream.writableNeedDrain;
  }

  /** Writes whatever is pending now, as one buffer (small frames are joined: one short copy). */
  flush(): void {
    this.#scheduled = false;
    if (this.#pendingBytes === 0 || this.#stream.destroyed) return;
    const batch =
      this.#pending.length === 1
        ? (this.#pending[0] as Uint8Array)
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
