/**
 * Crash points: places between two durable steps where the test-only fault hook
 * (FORGE_FAULT_HOOK=crash-after:<point>) makes `forge server` SIGKILL itself, so a fault test hits
 * that window every time instead of by luck (test/faults). Production never sets the hook.
 *
 * run-committed  a run's row (and its creation event) committed; nothing published yet
 * job-published  a discovery job published to the queue; the run not yet marked dispatched
 */
export const CRASH_POINTS = ['run-committed', 'job-published'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];
