/**
 * Reads a `message/ohttp-req` body as the chunks it arrives in, for the link to send as they are
 * (`writev`). Fastify's own buffer parser joins the chunks into one fresh buffer per request: at
 * 1 MiB bodies that copy, with the frame decoder's, drove most of the relay's GC (external memory).
 * The bounds are Fastify's, kept exactly: a declared Content-Length over the limit is refused before
 * a byte is read, a body (chunked or not) is refused as soon as it passes the limit (its chunks are
 * dropped, nothing more is kept), and a body that does not match its Content-Length is refused.
 */
import { errorCodes } from 'fastify';
import type { FastifyRequest } from 'fastify';
import { PayloadPieces } from '../../shared/frames.ts';

type Done = (error: Error | null, body?: PayloadPieces) => void;

/** A Fastify content-type parser (raw-stream form) for bodies of at most `limit` bytes. */
export function ohttpBodyParser(limit: number) {
  return (request: FastifyRequest, payload: NodeJS.ReadableStream, done: Done): void => {
    const declared = Number(request.headers['content-length']);
    if (declared > limit) {
      done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    let chunks: Buffer[] = [];
    let received = 0;
    const stop = () => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
    };
    const onData = (chunk: Buffer | string) => {
      // Node's HTTP parser hands each body chunk as its own copy, so keeping them is safe.
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      received += bytes.byteLength;
      if (received > limit) {
        stop();
        chunks = [];
        done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
        return;
      }
      chunks.push(bytes);
    };
    const onEnd = () => {
      stop();
      if (!Number.isNaN(declared) && received !== declared) {
        done(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
        return;
      }
      done(null, new PayloadPieces(chunks));
    };
    const onError = (error: Error & { statusCode?: number }) => {
      stop();
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      done(error);
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.resume();
  };
}
