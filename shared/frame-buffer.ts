/**
 * The bytes a frame decoder holds between socket chunks, as the list of chunks received: taking
 * bytes that lie in one chunk returns a view (no copy); bytes spanning chunks are joined once.
 */

/**
 * A payload given as the pieces it arrived in (an HTTP body's chunks), sent as they are rather
 * than joined into one fresh buffer: at 1 MiB bodies those copies drove most of the relay's GC.
 * A class, not a bare array, so that a field meant as a CBOR array is never taken for one.
 */
export class PayloadPieces {
  readonly pieces: readonly Uint8Array[];
  readonly byteLength: number;

  constructor(pieces: readonly Uint8Array[]) {
    this.pieces = pieces;
    let total = 0;
    for (const piece of pieces) total += piece.byteLength;
    this.byteLength = total;
  }
}

/** A queue of received chunks. */
export class FrameBuffer {
  #chunks: Buffer[] = [];
  #length = 0;

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  /** Appends a chunk without copying it. */
  append(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#length += chunk.byteLength;
  }

  /** True when the first `count` bytes lie in one chunk (taking them costs no copy). */
  contiguous(count: number): boolean {
    return count === 0 || (this.#chunks[0]?.byteLength ?? 0) >= count;
  }

  /** Moves up to `count` bytes into `target` at `offset`; returns how many were moved. */
  moveInto(target: Uint8Array, offset: number, count: number): number {
    let moved = 0;
    while (moved < count && this.#chunks.length > 0) {
      const first = this.#chunks[0] as Buffer;
      const size = Math.min(first.byteLength, count - moved);
      target.set(first.subarray(0, size), offset + moved);
      moved += size;
      if (size === first.byteLength) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(size);
    }
    this.#length -= moved;
    return moved;
  }

  /**
   * Removes the first `count` bytes (the caller has checked that they are held) and returns them
   * as views of the chunks they lie in, without joining them.
   */
  takePieces(count: number): Buffer[] {
    const pieces: Buffer[] = [];
    let taken = 0;
    while (taken < count) {
      const first = this.#chunks[0] as Buffer;
      const size = Math.min(first.byteLength, count - taken);
      pieces.push(first.subarray(0, size));
      taken += size;
      if (size === first.byteLength) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(size);
    }
    this.#length -= count;
    return pieces;
  }

  /** Removes and returns the first `count` bytes (the caller has checked that they are held). */
  take(count: number): Buffer {
    if (count === 0) return Buffer.alloc(0);
    const first = this.#chunks[0] as Buffer;
    let result: Buffer;
    if (first.byteLength >= count) {
      result = first.subarray(0, count);
      if (first.byteLength === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
    } else {
      // Join only the chunks these bytes span: joining everything buffered would copy the
      // frames behind them again for every frame (quadratic when many large frames are queued).
      let spanned = 0;
      let chunkCount = 0;
      while (spanned < count) spanned += (this.#chunks[chunkCount++] as Buffer).byteLength;
      const joined = Buffer.concat(this.#chunks.slice(0, chunkCount), spanned);
      result = joined.subarray(0, count);
      this.#chunks =
        spanned > count
          ? [joined.subarray(count), ...this.#chunks.slice(chunkCount)]
          : this.#chunks.slice(chunkCount);
    }
    this.#length -= count;
    return result;
  }
}
