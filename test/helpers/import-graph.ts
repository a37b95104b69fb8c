/**
 * The project's import graph, read with TypeScript's own pre-processor (static, type-only,
 * re-export, side-effect and dynamic `import()` forms; comments and strings are not imports), and
 * a walk that reports every path from an entry file to a forbidden module. The walk is a pure
 * function of the graph so tests can feed it synthetic graphs.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** Project-relative POSIX path of a source file, or `package:<specifier>` for a bare import. */
export type ModuleId = string;

/** What each module imports, by {@link ModuleId}. */
export type ImportGraph = ReadonlyMap<ModuleId, readonly ModuleId[]>;

/** Every import specifier in a TypeScript source text. */
export function importSpecifiers(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName);
}

/** Project-relative POSIX paths of the `.ts` files under `folder`. */
export function sourceFiles(root: string, folder: string): string[] {
  return readdirSync(path.join(root, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => toId(root, path.join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * Reads the graph reachable from `entries` through relative imports. A relative import that does
 * not resolve to a file throws: a scanner that silently skips what it cannot resolve proves nothing.
 */
export function readImportGraph(root: string, entries: readonly string[]): ImportGraph {
  const graph = new Map<ModuleId, ModuleId[]>();
  const pending = [...entries];
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    if (graph.has(id) || id.startsWith('package:')) continue;
    const file = path.join(root, id);
    const targets = importSpecifiers(readFileSync(file, 'utf8')).map((specifier) => {
      if (!specifier.startsWith('.')) return `package:${specifier}`;
      const resolved = path.resolve(path.dirname(file), specifier);
      if (!existsSync(resolved)) throw new Error(`${id}: cannot resolve ${specifier}`);
      return toId(root, resolved);
    });
    graph.set(id, targets);
    pending.push(...targets);
  }
  return graph;
}

/**
 * Every import chain from an entry to a module `forbidden` accepts, shortest first per target.
 * The walk does not continue past a forbidden module (one violation is reported once, at the first
 * forbidden step), and visits each module once, so cycles terminate.
 */
export function forbiddenChains(
  graph: ImportGraph,
  entries: readonly ModuleId[],
  forbidden: (from: ModuleId, to: ModuleId) => boolean,
): string[] {
  const chains: string[] = [];
  const seen = new Set<ModuleId>();
  const queue: ModuleId[][] = entries.map((entry) => [entry]);
  for (let chain = queue.shift(); chain !== undefined; chain = queue.shift()) {
    const current = chain.at(-1) as ModuleId;
    if (seen.has(current)) continue;
    seen.add(current);
    for (const target of graph.get(current) ?? []) {
      if (forbidden(current, target)) chains.push([...chain, target].join(' → '));
      else queue.push([...chain, target]);
    }
  }
  return chains;
}

function toId(root: string, file: string): ModuleId {
  return path.relative(root, file).split(path.sep).join('/');
}
