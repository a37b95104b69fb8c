/** Schemas shared by the routes (TypeBox: one definition, the runtime check and the static type). */
import type { Readable } from 'node:stream';
import { Type } from '@fastify/type-provider-typebox';
import { MODEL_NAME_PATTERN } from '../model-registry.ts';

export const ErrorReply = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }) },
  { additionalProperties: false },
);

/** Error statuses every route may answer with. */
export const ERROR_REPLIES = {
  400: ErrorReply,
  401: ErrorReply,
  403: ErrorReply,
  404: ErrorReply,
  409: ErrorReply,
  413: ErrorReply,
  415: ErrorReply,
  422: ErrorReply,
  429: ErrorReply,
  500: ErrorReply,
  502: ErrorReply,
  503: ErrorReply,
  504: ErrorReply,
} as const;

export const ModelNameParams = Type.Object(
  { name: Type.String({ pattern: MODEL_NAME_PATTERN }) },
  { additionalProperties: false },
);

/**
 * A binary body (key configs, encapsulated responses); Fastify sends Buffers and streams (a large
 * response relayed as its pieces) unserialised.
 */
export const BinaryReply = Type.Unsafe<Buffer | Readable>({ description: 'binary body' });
