/** Phase groups (digest §1.7): distinct `group` values ascending, phase names sorted inside each. */
import type { PhaseDefinition } from './repo-config.ts';

export interface PhaseGroup {
  group: number;
  phases: string[];
}

export function phaseGroups(phases: Record<string, PhaseDefinition>): PhaseGroup[] {
  const byGroup = new Map<number, string[]>();
  for (const [name, phase] of Object.entries(phases)) byGroup.set(phase.group, [...(byGroup.get(phase.group) ?? []), name]);
  return [...byGroup.entries()]
    .sort(([a], [b]) => a - b)
    .map(([group, names]) => ({ group, phases: names.sort() }));
}
