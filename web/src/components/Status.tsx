/** A status as a coloured badge with a symbol, so it reads without colour too. */
import { assertNever } from '../../../src/lib/assert-never.ts';
import type { ApprovalStatus, DeploymentStatus, ExecutionStatus, ReleaseBuildStatus, RunStatus } from '../types.ts';

export type AnyStatus = RunStatus | ExecutionStatus | DeploymentStatus | ReleaseBuildStatus | ApprovalStatus;

type Tone = 'ok' | 'bad' | 'busy' | 'idle' | 'muted';

function tone(status: AnyStatus): { tone: Tone; symbol: string } {
  switch (status) {
    case 'success': case 'active': return { tone: 'ok', symbol: '✓' };
    case 'failed': return { tone: 'bad', symbol: '✗' };
    case 'running': case 'building': case 'releasing': return { tone: 'busy', symbol: '●' };
    case 'pending': return { tone: 'idle', symbol: '○' };
    case 'cancelled': case 'skipped': case 'superseded': case 'expired': case 'revoked': return { tone: 'muted', symbol: '–' };
    default: return assertNever(status, 'status');
  }
}

export function StatusBadge({ status, label }: { status: AnyStatus; label?: string }) {
  const t = tone(status);
  return (
    <span className={`status status-${t.tone}`} data-status={status}>
      <span aria-hidden="true" className="status-symbol">{t.symbol}</span>
      {label ?? status}
    </span>
  );
}

export const isTerminalRun = (status: RunStatus) => status === 'success' || status === 'failed' || status === 'cancelled';
export const isTerminalExecution = (status: ExecutionStatus) => status === 'success' || status === 'failed' || status === 'skipped';
