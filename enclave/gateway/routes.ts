/**
 * The Open Inference Protocol v2 routes the gateway serves inside the encryption
 * (`../shared/oip/inference_rest.md`): which inner request is which route, and the answers of
 * every route except inference itself (inference-gateway.ts keeps the infer handler and its body
 * handling). A model's version is the SHA-384 of its plaintext ONNX file: the digest is what the
 * attestation binds and what receipts carry, so a client that pins a version pins the weights.
 */
import { SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from '../../shared/inference/v2.ts';
import type { BhttpResponse, Field } from '../../shared/ohttp/bhttp.ts';
import type { ModelManager } from '../models/model-manager.ts';

/** Model names as they appear in paths (the parent's admin API uses the same pattern). */
const MODEL_NAME = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}';
/** Versions are digests, but a client may send any label; bounded so a path cannot grow the match. */
const MODEL_VERSION = '[A-Za-z0-9._-]{1,128}';
const MODEL_ROUTE = new RegExp(
  `^/v2/models/(${MODEL_NAME})(?:/versions/(${MODEL_VERSION}))?(/ready|/infer)?$`,
);

/** An error answered inside the encryption with its HTTP status and stable code. */
export class InnerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What an inner request path names. */
export type Route =
  | { readonly kind: 'server-metadata' | 'live' | 'ready' | 'models' }
  | {
      readonly kind: 'model-metadata' | 'model-ready' | 'infer';
      readonly name: string;
      readonly version?: string;
    };

/**
 * Matches an inner request; checks the method too.
 * @throws {InnerError} 404 `ERR_HTTP_NOT_FOUND` for an unknown path, 405 for a wrong method.
 */
export function matchRoute(method: string, rawPath: string): Route {
  const path = rawPath.split('?')[0] ?? '';
  const route = routeOf(path);
  if (route === undefined) throw new InnerError(404, 'ERR_HTTP_NOT_FOUND', 'no such route');
  const wanted = route.kind === 'infer' ? 'POST' : 'GET';
  if (method !== wanted) throw new InnerError(405, 'ERR_HTTP_BAD_REQUEST', `use ${wanted}`);
  return route;
}

function routeOf(path: string): Route | undefined {
  // `/v2/` is how the OpenAPI document writes server metadata; `/v2` how the prose does.
  if (path === '/v2' || path === '/v2/') return { kind: 'server-metadata' };
  if (path === '/v2/health/live') return { kind: 'live' };
  if (path === '/v2/health/ready') return { kind: 'ready' };
  if (path === '/v2/models') return { kind: 'models' };
  const match = MODEL_ROUTE.exec(path);
  if (match === null) return undefined;
  const name = match[1] as string;
  const version = match[2];
  const kind = match[3] === '/infer' ? 'infer' : match[3] === '/ready' ? 'model-ready' : 'model-metadata';
  return { kind, name, ...(version === undefined ? {} : { version }) };
}

/** A loaded model as the routes see it. */
export type LoadedModel = ReturnType<ModelManager['list']>[number];

/**
 * The loaded model a route names, at the version it asks for (its digest, any case).
 * @throws {InnerError} 404 `ERR_MODEL_NOT_FOUND`.
 */
export function findModel(models: ModelManager, name: string, version?: string): LoadedModel {
  const model = models.list().find((entry) => entry.identity.name === name);
  if (model === undefined) throw new InnerError(404, 'ERR_MODEL_NOT_FOUND', `model ${name} is not loaded`);
  if (version !== undefined && version.toLowerCase() !== model.identity.sha384.toLowerCase()) {
    throw new InnerError(
      404,
      'ERR_MODEL_NOT_FOUND',
      `model ${name} has no version ${version}; its version is its SHA-384 ${model.identity.sha384}`,
    );
  }
  return model;
}

/** Answers every GET route (inference is the gateway's own handler). */
export function answerMetadataRoute(route: Route, models: ModelManager): BhttpResponse {
  switch (route.kind) {
    case 'server-metadata':
      return jsonValue(200, {
        name: SERVER_NAME,
        version: SERVER_VERSION,
        extensions: [...SERVER_EXTENSIONS],
      });
    case 'live':
      return jsonValue(200, { live: true });
    case 'ready':
      // The gateway answers only once the enclave serves, and a loaded model is a ready one.
      return jsonValue(200, { ready: true });
    case 'models':
      return jsonValue(200, { models: models.list().map((entry) => ({ ...entry.identity, ready: true })) });
    case 'model-ready': {
      const model = findModel(models, route.name, route.version);
      return jsonValue(200, { name: model.identity.name, version: model.identity.sha384, ready: true });
    }
    case 'model-metadata': {
      const model = findModel(models, route.name, route.version);
      return jsonValue(200, {
        ...model.metadata,
        versions: [model.identity.sha384],
        sha384: model.identity.sha384,
      });
    }
    case 'infer':
      throw new InnerError(500, 'ERR_INTERNAL', 'inference is not a metadata route');
  }
}

export function json(status: number, content: Uint8Array, extra: readonly Field[] = []): BhttpResponse {
  return {
    informational: [],
    status,
    headers: [['content-type', 'application/json'], ...extra],
    content,
    trailers: [],
  };
}

export function jsonValue(status: number, value: unknown, extra: readonly Field[] = []): BhttpResponse {
  return json(status, new TextEncoder().encode(JSON.stringify(value)), extra);
}
