/**
 * Key policies in AWS's JSON syntax, evaluated as KMS does for the parts nitro-infer relies on:
 * explicit Deny wins, then any Allow, else deny. Conditions support the operators a Nitro key
 * policy uses (`StringEquals`, `StringEqualsIgnoreCase`, `StringLike` and their `Not` forms) on
 * `kms:RecipientAttestation:ImageSha384`, `kms:RecipientAttestation:PCR0`–`PCR31` and
 * `kms:EncryptionContext:<key>`. An operator or key this simulator does not know makes the
 * statement not apply (fail closed for Allow).
 */

/** The facts a request contributes to policy evaluation. */
export interface RequestContext {
  readonly action: string;
  /** ARN of the caller (the simulator has one principal per set of credentials). */
  readonly principal: string;
  /** Condition keys and their values, e.g. `kms:RecipientAttestation:PCR0` → hex. */
  readonly conditions: ReadonlyMap<string, string>;
}

interface Statement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Principal?: unknown;
  readonly Action?: string | string[];
  readonly NotAction?: string | string[];
  readonly Resource?: string | string[];
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

/** Largest policy KMS accepts (32 KiB). */
export const MAX_POLICY_BYTES = 32 * 1024;

/**
 * Parses and validates a key policy document.
 * @throws Error with a message in the style of KMS's `MalformedPolicyDocumentException`.
 */
export function parseKeyPolicy(text: string): readonly Statement[] {
  if (text.length > MAX_POLICY_BYTES) throw new Error('policy is larger than 32 KiB');
  const document = JSON.parse(text) as { Version?: unknown; Statement?: unknown };
  const statements = Array.isArray(document.Statement) ? document.Statement : [document.Statement];
  for (const statement of statements as Statement[]) {
    if (typeof statement !== 'object' || statement === null)
      throw new Error('every Statement must be an object');
    if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny')
      throw new Error('Effect must be Allow or Deny');
    if (statement.Action === undefined && statement.NotAction === undefined)
      throw new Error('a Statement needs an Action');
    if (statement.Principal === undefined) throw new Error('a key policy Statement needs a Principal');
  }
  return statements as Statement[];
}

/** True when the policy allows the request. */
export function isAllowed(
  statements: readonly Statement[],
  request: RequestContext,
  account: string,
): boolean {
  let allowed = false;
  for (const statement of statements) {
    if (!applies(statement, request, account)) continue;
    if (statement.Effect === 'Deny') return false;
    allowed = true;
  }
  return allowed;
}

function applies(statement: Statement, request: RequestContext, account: string): boolean {
  if (!principalMatches(statement.Principal, request.principal, account)) return false;
  if (
    statement.Action !== undefined &&
    !list(statement.Action).some((pattern) => glob(pattern, request.action, true))
  )
    return false;
  if (
    statement.NotAction !== undefined &&
    list(statement.NotAction).some((pattern) => glob(pattern, request.action, true))
  )
    return false;
  return Object.entries(statement.Condition ?? {}).every(([operator, clauses]) =>
    Object.entries(clauses).every(([key, expected]) =>
      conditionHolds(operator, request.conditions.get(key), list(expected)),
    ),
  );
}

function principalMatches(principal: unknown, caller: string, account: string): boolean {
  if (principal === '*') return true;
  const aws = (principal as { AWS?: unknown } | undefined)?.AWS;
  return list(aws as string | string[] | undefined).some(
    // An account (or its root) as principal delegates to the account's IAM: every caller in it.
    (entry) =>
      entry === '*' || entry === caller || entry === account || entry === `arn:aws:iam::${account}:root`,
  );
}

function conditionHolds(operator: string, actual: string | undefined, expected: readonly string[]): boolean {
  const negated = operator.startsWith('StringNot');
  const base = negated ? operator.replace('StringNot', 'String') : operator;
  let matches: boolean;
  switch (base) {
    case 'StringEquals':
      matches = actual !== undefined && expected.includes(actual);
      break;
    case 'StringEqualsIgnoreCase':
      matches =
        actual !== undefined && expected.some((value) => value.toLowerCase() === actual.toLowerCase());
      break;
    case 'StringLike':
      matches = actual !== undefined && expected.some((pattern) => glob(pattern, actual, false));
      break;
    default:
      return false; // an unknown operator never grants
  }
  return negated ? actual !== undefined && !matches : matches;
}

function glob(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

function list(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}
