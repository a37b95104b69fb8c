/**
 * A static check of Dockerfile.enclave's reproducibility and hardening rules (DESIGN.md 7), run by
 * the tests since no Docker engine runs here: every base image pinned by digest and never `latest`
 * or Alpine, `npm ci` from the lockfile, SOURCE_DATE_EPOCH applied, a non-root final user, an
 * exec-form entry point, no downloads (ADD of URLs, curl, wget) and no package manager at run time.
 * Returns the problems found (empty when the file passes).
 */
export function checkDockerfile(text: string): string[] {
  const problems: string[] = [];
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
  const args = new Map<string, string>();
  for (const line of lines) {
    const match = /^ARG\s+([A-Z_]+)=(\S+)/.exec(line);
    if (match !== null) args.set(match[1] as string, match[2] as string);
  }
  const stages = lines.flatMap((line, index) => (/^FROM\s/i.test(line) ? [index] : []));
  if (stages.length < 2) problems.push('not a multi-stage build');
  for (const index of stages) {
    const image = (lines[index] as string).split(/\s+/)[1] as string;
    const resolved = image.replace(/^\$\{?([A-Z_]+)\}?$/, (_all, name: string) => args.get(name) ?? image);
    if (!/@sha256:[0-9a-f]{64}$/.test(resolved)) problems.push(`FROM ${image} is not pinned by digest`);
    if (/:latest(@|$)/.test(resolved)) problems.push(`FROM ${image} uses latest`);
    if (/alpine/i.test(resolved)) problems.push(`FROM ${image} is Alpine (musl): onnxruntime needs glibc`);
  }
  if (!lines.some((line) => /^RUN\s.*\bnpm ci\b/.test(line)))
    problems.push('dependencies are not installed with npm ci');
  if (lines.some((line) => /\bnpm (install|i)\b/.test(line)))
    problems.push('npm install ignores the lockfile');
  if (!lines.some((line) => line.includes('SOURCE_DATE_EPOCH') && /touch|rewrite-timestamp/.test(line))) {
    problems.push('file times are not fixed with SOURCE_DATE_EPOCH');
  }
  if (lines.some((line) => /^ADD\s+https?:/i.test(line))) problems.push('ADD downloads from a URL');
  if (lines.some((line) => /\b(curl|wget)\b/.test(line))) problems.push('the build downloads with curl/wget');
  const last = stages.at(-1) ?? 0;
  const final = lines.slice(last);
  const user = final.filter((line) => /^USER\s/.test(line)).at(-1);
  if (user === undefined || /^USER\s+(root|0)(:|$)/.test(user)) problems.push('the final stage runs as root');
  if (final.some((line) => /\b(apt-get|apk|npm)\b/.test(line) && /^RUN/.test(line))) {
    problems.push('the final stage runs a package manager');
  }
  const entry = final.filter((line) => /^ENTRYPOINT\s/.test(line)).at(-1);
  if (entry === undefined || !/^ENTRYPOINT\s+\[/.test(entry))
    problems.push('no exec-form ENTRYPOINT in the final stage');
  if (entry !== undefined && /tsx|\.ts"/.test(entry))
    problems.push('the entry point runs TypeScript, not compiled JavaScript');
  return problems;
}
