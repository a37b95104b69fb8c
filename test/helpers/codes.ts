/** The stable code an action fails with ('accepted' when it does not fail); other errors rethrown. */
import { isNitroInferError } from '../../shared/errors.ts';

export function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (isNitroInferError(error)) return error.code;
    throw error;
  }
  return 'accepted';
}

export async function codeOfAsync(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
  } catch (error) {
    if (isNitroInferError(error)) return error.code;
    throw error;
  }
  return 'accepted';
}
