/**
 * The Open Inference Protocol's OpenAPI document (`../shared/oip/open_inference_rest.yaml`, beside
 * the fixtures; never copied into the repo) as a validator of HTTP exchanges, through
 * openapi-backend (a maintained, framework-agnostic OpenAPI 3 router and validator on Ajv).
 * The document's quirks (see its README) are handled here, openly: `${NAME}` path parameters are
 * rewritten to OpenAPI's `{NAME}`; `/v2` is checked as the document's `/v2/`; unversioned model
 * paths, which the prose allows but the document omits, are checked as their versioned form; and
 * statuses the document does not declare are checked against the prose's error object instead.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { OpenAPIBackend } from 'openapi-backend';
import type { Operation } from 'openapi-backend';
import YAML from 'yaml';
import { FIXTURES_DIR } from './fixtures.ts';

export const OIP_DIR = path.resolve(FIXTURES_DIR, '..', 'oip');
const SPEC_FILE = path.join(OIP_DIR, 'open_inference_rest.yaml');
export const HAVE_OIP_SPEC = existsSync(SPEC_FILE);
export const OIP_SPEC_ABSENT = `the OIP specification is absent at ${SPEC_FILE}: OpenAPI validation skipped`;

if (!HAVE_OIP_SPEC && process.env.CI === 'true')
  throw new Error(`${OIP_SPEC_ABSENT}; CI=true requires it (set NITRO_FIXTURES_DIR)`);
if (!HAVE_OIP_SPEC) console.warn(`\n*** ${OIP_SPEC_ABSENT} ***\n`);

/** One HTTP exchange as a plain client saw it. */
export interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly requestBody?: unknown;
  readonly status: number;
  readonly responseBody: unknown;
}

export interface OipValidator {
  /** Problems with the exchange (empty when it conforms); `operationId` is the route it matched. */
  check(exchange: Exchange): { operationId: string; problems: string[] };
}

/** Builds the validator from the shared YAML. */
export async function oipValidator(): Promise<OipValidator> {
  const text = readFileSync(SPEC_FILE, 'utf8').replace(/\$\{([A-Za-z_]+)\}/g, '{$1}');
  const api = new OpenAPIBackend({
    definition: YAML.parse(text) as never,
    strict: true,
    validate: true,
  });
  await api.init();
  const declared = (operation: Operation) => Object.keys(operation.responses ?? {});
  return {
    check(exchange) {
      const bare = exchange.path.split('?')[0] ?? '';
      const canonical =
        bare === '/v2' || bare === '/v2/'
          ? '/v2/'
          : bare.replace(/^(\/v2\/models\/[^/]+)(?=\/ready$|\/infer$|$)/, '$1/versions/unversioned');
      const request = {
        method: exchange.method.toLowerCase(),
        path: canonical,
        headers: exchange.requestBody === undefined ? {} : { 'content-type': 'application/json' },
        ...(exchange.requestBody === undefined ? {} : { body: exchange.requestBody }),
      };
      // openapi-backend's router trims the document's trailing slash from `/v2/`; name it directly.
      const operation = canonical === '/v2/' ? api.getOperation('get-v2') : api.matchOperation(request);
      if (operation === undefined)
        return { operationId: '(none)', problems: [`no operation for ${exchange.method} ${canonical}`] };
      const problems: string[] = [];
      const requestCheck = api.validateRequest(request, operation);
      for (const error of requestCheck.errors ?? [])
        problems.push(`request ${error.instancePath} ${error.message}`);
      if (declared(operation).includes(String(exchange.status))) {
        const responseCheck = api.validateResponse(exchange.responseBody, operation, exchange.status);
        for (const error of responseCheck.errors ?? [])
          problems.push(`response ${error.instancePath} ${error.message}`);
      } else if (exchange.status >= 400) {
        // inference_rest.md: every error answer is a JSON object with an "error" string.
        const body = exchange.responseBody as { error?: unknown } | undefined;
        if (typeof body?.error !== 'string')
          problems.push(`a ${exchange.status} body without an "error" string`);
      } else if (exchange.status !== 200) {
        problems.push(`status ${exchange.status} is neither declared nor an error`);
      }
      return { operationId: operation.operationId ?? '(unnamed)', problems };
    },
  };
}
