/** What the enclave tells the parent about a loaded model: identity and signature, never bytes. */
import type { LoadedModel } from '../models/model-manager.ts';

export function describeModel(model: LoadedModel): Record<string, unknown> {
  return {
    name: model.identity.name,
    sha384: model.identity.sha384,
    bytes: model.sizeBytes,
    inputs: model.metadata.inputs.map((input) => ({ ...input, shape: [...input.shape] })),
    outputs: model.metadata.outputs.map((output) => ({ ...output, shape: [...output.shape] })),
  };
}
