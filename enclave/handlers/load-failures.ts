/**
 * Failed model loads as log events (`model.load_failed` with the step and the code), so that an
 * operator of a production enclave sees them in the parent's log (server/telemetry.ts) and not
 * only in the answer to whoever asked. A model load is an operator action the parent starts: its
 * name and outcome are facts the parent already has.
 */
import { isNitroInferError } from '../../shared/errors.ts';
import type { LinkHandler, Log } from '../server/link-server.ts';

/** `handler` for the load step `step`, logging each failure before it is answered. */
export function loggingLoadFailures(
  step: 'load' | 'chunk' | 'end',
  handler: LinkHandler,
  log: Log,
): LinkHandler {
  return async (fields, connection) => {
    try {
      return await handler(fields, connection);
    } catch (error) {
      const code = isNitroInferError(error) ? error.code : 'ERR_INTERNAL';
      // Chunks still in flight after an upload failed find it gone: one event per failure is enough.
      if (step !== 'chunk' || code !== 'ERR_LINK_REQUEST_INVALID') {
        const name = fields.get('name');
        log('warn', 'model.load_failed', {
          ...(typeof name === 'string' ? { model: name } : {}),
          step,
          code,
        });
      }
      throw error;
    }
  };
}
