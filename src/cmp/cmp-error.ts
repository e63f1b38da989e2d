/**
 * How the Argo CD plugin fails (digest §4.7): one error type carrying which check failed, whether
 * trying again can help, and the facts an operator needs (the pointer file, the image reference…).
 * Argo CD shows the plugin's stderr in the Application's sync error and fails the sync on any
 * non-zero exit; the exit code says which kind of failure it was:
 *
 *   0   success (discover: the directory holds a valid ReleasePointer; generate: manifests printed)
 *   1   permanent: malformed or missing pointer, invalid SHA, no such image, no resources layer, a
 *       document without apiVersion/kind… Trying again gives the same answer: fix the pointer or
 *       the release.
 *   2   usage: a bad flag or setting (FORGE_RELEASE_REGISTRY, FORGE_GITOPS_LAYOUT, …).
 *   75  transient (EX_TEMPFAIL): the registry could not be reached, timed out or answered 5xx/429
 *       after the client's own retries. Argo CD tries again on its next refresh.
 */
import { isForgeError } from '../domain/errors.ts';

export const CMP_EXIT = { ok: 0, permanent: 1, usage: 2, transient: 75 } as const;

/** The check that failed, named in the message (`check: pointer.release`). */
export const CMP_CHECKS = [
  'pointer.file',
  'pointer.yaml',
  'pointer.apiVersion',
  'pointer.kind',
  'pointer.release',
  'pointer.target',
  'image.pull',
  'image.manifest',
  'image.commit',
  'layer.resources',
  'layer.archive',
  'resources.yaml',
  'resources.document',
  'resources.empty',
  'env.file',
  'settings',
  /** Anything the plugin did not foresee (a bug): reported, never hidden. */
  'internal',
] as const;
export type CmpCheck = (typeof CMP_CHECKS)[number];

export type CmpFailure = 'permanent' | 'transient' | 'usage';

export class CmpError extends Error {
  override readonly name = 'CmpError';
  constructor(
    readonly failure: CmpFailure,
    readonly check: CmpCheck,
    message: string,
    /** Printed under the message in this order, one `key: value` line each. */
    readonly details: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get exitCode(): number {
    return CMP_EXIT[this.failure];
  }
}

export const permanent = (check: CmpCheck, message: string, details: Record<string, string> = {}, cause?: unknown) =>
  new CmpError('permanent', check, message, details, cause === undefined ? undefined : { cause });

const RETRY_NOTE: Record<CmpFailure, string> = {
  permanent: `no (permanent, exit ${CMP_EXIT.permanent}): fix the release pointer or the release image`,
  transient: `yes (transient, exit ${CMP_EXIT.transient}): Argo CD tries again on its next refresh`,
  usage: `no (usage, exit ${CMP_EXIT.usage}): fix the plugin's flags or environment`,
};

/** `forge cmp: <what>` and indented `key: value` lines, ending with whether a retry can help. */
export function formatCmpError(error: CmpError): string {
  const lines = [`forge cmp: ${error.message}`, `  check: ${error.check}`];
  for (const [key, value] of Object.entries(error.details)) lines.push(`  ${key}: ${value}`);
  lines.push(`  retry: ${RETRY_NOTE[error.failure]}`);
  return `${lines.join('\n')}\n`;
}

/** Registry answers worth trying again: nothing answered, it timed out, or it was overloaded. */
const TRANSIENT_CODES: readonly string[] = ['service_unavailable', 'rate_limited'];

/**
 * An OciStore failure as a CmpError: the store's own retries are spent, so unreachable / 5xx / 429
 * are transient; not found, refused credentials and corrupt content are permanent. Anything the
 * store did not classify (an I/O error of the layout store) is treated as transient.
 */
export function pullFailure(error: unknown, what: string, details: Record<string, string>): CmpError {
  if (error instanceof CmpError) return error;
  const message = (error as Error).message;
  if (!isForgeError(error)) return new CmpError('transient', 'image.pull', `cannot read ${what}: ${message}`, details, { cause: error });
  const failure = TRANSIENT_CODES.includes(error.code) ? 'transient' : 'permanent';
  const headline = error.code === 'not_found' ? `${what} not found` : `cannot read ${what}`;
  return new CmpError(failure, 'image.pull', headline, { ...details, reason: `${message} (${error.code})` }, { cause: error });
}
