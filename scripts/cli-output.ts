/** What a verb returns: text for each stream and the exit status, so verbs are testable in-process. */
export interface CommandOutput {
  readonly exitCode: number;
  readonly stdout?: string;
  readonly stderr?: string;
}
