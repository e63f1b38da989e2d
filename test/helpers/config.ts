/** Shared by the configuration tests: the problems a load or discovery refused with. */
import { ConfigError } from '../../src/config/config-file.ts';
import type { CueProblem } from '../../src/config/cue.ts';

/** The problems of the ConfigError `work` fails with; fails the test if it succeeds or fails otherwise. */
export async function configProblems(work: Promise<unknown>): Promise<CueProblem[]> {
  try {
    await work;
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}
