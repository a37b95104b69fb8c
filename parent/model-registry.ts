/**
 * What the parent remembers about models: names and where their sealed artifacts live — never
 * their plaintext, which it never has. After the enclave restarts the link reconnects and this
 * registry streams every remembered artifact in again, so the service recovers without an operator.
 * The same happens, without a restart, when an inference worker in the enclave dies: the enclave
 * answers a `models.watch` the registry keeps open with the models that lost sessions, and the
 * registry streams them again (the enclave keeps no plaintext copy to rebuild them from).
 */
import { ArtifactError, NitroInferError } from '../shared/errors.ts';
import type { ArtifactSource, ArtifactStore } from './artifacts/artifact-source.ts';
import { formatArtifactSource } from './artifacts/artifact-source.ts';
import type { EnclaveLink, LinkLog, LinkState } from './link/enclave-link.ts';
import { uploadModel } from './link/model-upload.ts';
import type { LoadedModelDescription } from './link/model-upload.ts';
import { toPlain } from './link/plain.ts';

/** A model the parent has asked the enclave to hold. */
export interface RegisteredModel {
  readonly name: string;
  readonly source: string;
  readonly versionId?: string;
  /**
   * `ready` only while the enclave that holds the model is reachable: a loaded model behind a
   * link that is down is `unavailable` (health and metrics tell the truth, not the last load).
   */
  readonly state: 'loading' | 'ready' | 'failed' | 'unavailable';
  /** The state of the link to the enclave serving it. */
  readonly link: LinkState;
  readonly description?: LoadedModelDescription;
  readonly error?: string;
}

interface Entry {
  source: ArtifactSource;
  versionId?: string;
  state: 'loading' | 'ready' | 'failed';
  description?: LoadedModelDescription;
  error?: string;
}

/** How long a `models.watch` waits in the enclave (its MAX_WATCH_MS), and the margin on top. */
export const MODEL_WATCH_MS = 25_000;
const MODEL_WATCH_TIMEOUT_MS = MODEL_WATCH_MS + 10_000;
/** Pause before watching again after a round that did not restore everything (no tight loop). */
export const MODEL_RESTORE_PAUSE_MS = 2_000;

/** Model names: what the Open Inference Protocol puts in a URL path. */
export const MODEL_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

export class ModelRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #link: EnclaveLink;
  readonly #stores: Readonly<Record<ArtifactSource['kind'], ArtifactStore | undefined>>;
  readonly #log: LinkLog;
  /** One load or unload at a time per name. */
  readonly #locks = new Map<string, Promise<unknown>>();
  #reloading = false;
  #watching = false;

  constructor(options: {
    link: EnclaveLink;
    stores: Readonly<Record<ArtifactSource['kind'], ArtifactStore | undefined>>;
    log: LinkLog;
  }) {
    this.#link = options.link;
    this.#stores = options.stores;
    this.#log = options.log;
    options.link.onConnect(async () => this.#reloadAll());
    options.link.on('state', (state: string) => {
      if (state === 'ready') void this.#watch();
    });
  }

  /** True while models are being streamed in again after a reconnect. */
  get reloading(): boolean {
    return this.#reloading;
  }

  list(): RegisteredModel[] {
    return [...this.#entries].map(([name, entry]) => describe(name, entry, this.#link.state));
  }

  get(name: string): RegisteredModel | undefined {
    const entry = this.#entries.get(name);
    return entry === undefined ? undefined : describe(name, entry, this.#link.state);
  }

  /**
   * Loads (or replaces) model `name` from `source`. The enclave swaps a model only once the new one
   * is fully loaded, so a failed reload leaves the previous version serving.
   */
  async load(name: string, source: ArtifactSource): Promise<RegisteredModel> {
    return this.#locked(name, async () => {
      const previous = this.#entries.get(name);
      const { description, versionId } = await this.#stream(name, source, false);
      const entry: Entry = {
        source,
        state: 'ready',
        description,
        ...(versionId === undefined ? {} : { versionId }),
      };
      this.#entries.set(name, entry);
      this.#log('info', 'model.loaded', {
        model: name,
        source: formatArtifactSource(source),
        replaced: previous !== undefined,
      });
      return describe(name, entry, this.#link.state);
    });
  }

  async unload(name: string): Promise<void> {
    return this.#locked(name, async () => {
      if (!this.#entries.has(name))
        throw new NitroInferError('ERR_MODEL_NOT_FOUND', `model ${name} is not loaded`);
      await this.#link.request('model.unload', { name });
      this.#entries.delete(name);
      this.#log('info', 'model.unloaded', { model: name });
    });
  }

  async #stream(name: string, source: ArtifactSource, internal: boolean) {
    const store = this.#stores[source.kind];
    if (store === undefined)
      throw new ArtifactError('ERR_ARTIFACT_SOURCE_INVALID', `${source.kind} sources are not configured`);
    const artifact = await store.open(source);
    const description = toPlain(
      await uploadModel(this.#link, name, artifact.size, artifact.body, { internal }),
    ) as LoadedModelDescription;
    return { description, versionId: artifact.versionId };
  }

  /** After a (re)connect: stream in every remembered model the enclave does not hold. */
  async #reloadAll(): Promise<void> {
    if (this.#entries.size === 0) return;
    this.#reloading = true;
    try {
      const status = await this.#link.request('status', {}, { internal: true });
      // A model whose sessions a replaced worker lacks is held only in part: stream it again too.
      const lost = new Set((toPlain(status.get('lost')) as string[] | undefined) ?? []);
      const held = new Set(
        ((toPlain(status.get('models')) as { name?: string }[] | undefined) ?? [])
          .map((model) => model.name)
          .filter((name) => name !== undefined && !lost.has(name)),
      );
      for (const [name, entry] of this.#entries) {
        if (held.has(name)) continue;
        entry.state = 'loading';
        try {
          const { description } = await this.#stream(name, entry.source, true);
          entry.description = description;
          entry.state = 'ready';
          delete entry.error;
          this.#log('info', 'model.reloaded', { model: name });
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'ERR_INTERNAL';
          // A link failure aborts the whole sync (the link reconnects and tries again); an artifact
          // that no longer loads is reported and the others still come back.
          if (code.startsWith('ERR_LINK_')) throw error;
          entry.state = 'failed';
          entry.error = code;
          this.#log('error', 'model.reload_failed', { model: name, code });
        }
      }
    } finally {
      this.#reloading = false;
    }
  }

  /**
   * While the link is ready: wait for the enclave to report models that lost sessions, and stream
   * each again (under its lock, so an operator's load or unload is not interleaved). Ends when the
   * link drops; the next `ready` starts it again.
   */
  async #watch(): Promise<void> {
    if (this.#watching) return;
    this.#watching = true;
    try {
      while (this.#link.state === 'ready') {
        let lost: string[];
        try {
          const reply = await this.#link.request(
            'models.watch',
            { waitMs: MODEL_WATCH_MS },
            { timeoutMs: MODEL_WATCH_TIMEOUT_MS },
          );
          lost = (toPlain(reply.get('lost')) as string[] | undefined) ?? [];
        } catch (error) {
          if (this.#link.state !== 'ready') return;
          const code = (error as { code?: string }).code ?? 'ERR_INTERNAL';
          // An enclave without the message (an older build): nothing to watch on this connection.
          if (code === 'ERR_LINK_REQUEST_INVALID') return;
          this.#log('warn', 'model.watch_failed', { code });
          await pause(MODEL_RESTORE_PAUSE_MS);
          continue;
        }
        let complete = true;
        for (const name of lost) {
          const entry = this.#entries.get(name);
          if (entry === undefined) {
            complete = false; // not ours to restore; do not spin on it
            continue;
          }
          complete = (await this.#restore(name)) && complete;
        }
        if (!complete) await pause(MODEL_RESTORE_PAUSE_MS);
      }
    } finally {
      this.#watching = false;
    }
  }

  async #restore(name: string): Promise<boolean> {
    return this.#locked(name, async () => {
      const entry = this.#entries.get(name);
      if (entry === undefined) return true; // unloaded meanwhile
      try {
        await this.#stream(name, entry.source, false);
        this.#log('info', 'model.restored', { model: name });
        return true;
      } catch (error) {
        this.#log('error', 'model.restore_failed', {
          model: name,
          code: (error as { code?: string }).code ?? 'ERR_INTERNAL',
        });
        return false;
      }
    });
  }

  async #locked<T>(name: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(task);
    this.#locks.set(name, next);
    try {
      return await next;
    } finally {
      if (this.#locks.get(name) === next) this.#locks.delete(name);
    }
  }
}

function describe(name: string, entry: Entry, link: LinkState): RegisteredModel {
  return {
    name,
    source: formatArtifactSource(entry.source),
    state: entry.state === 'ready' && link !== 'ready' ? 'unavailable' : entry.state,
    link,
    ...(entry.versionId === undefined ? {} : { versionId: entry.versionId }),
    ...(entry.description === undefined ? {} : { description: entry.description }),
    ...(entry.error === undefined ? {} : { error: entry.error }),
  };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
