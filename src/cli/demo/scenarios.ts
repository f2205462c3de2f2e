/** What each `--scenario` of the demo does to the running service, and how many times by default. */

export const SCENARIOS = ['upgrade', 'unhealthy', 'crash'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface Scenario {
  /** For the table's title. */
  title: string;
  /** `handoff`: each event is a handoff to a new build; `crash`: each event kills the incumbent. */
  event: 'handoff' | 'crash';
  /** kv's `--fault` flags for every successor (examples/kv/README.md). */
  successorFaults: readonly string[];
  /** Events when `--handoffs` is not given. */
  defaultCount: number;
}

export const SCENARIO: Readonly<Record<ScenarioName, Scenario>> = {
  upgrade: { title: 'handoffs to new builds', event: 'handoff', successorFaults: [], defaultCount: 3 },
  unhealthy: { title: 'handoffs to a build that reports itself unhealthy (rolled back)', event: 'handoff', successorFaults: ['unhealthy'], defaultCount: 1 },
  crash: { title: 'the incumbent crashes (SIGKILL) and the supervisor cold-starts a fresh one', event: 'crash', successorFaults: [], defaultCount: 1 },
};

/** The build the demo starts with: what an unhealthy successor's rollback must leave serving. */
export const FIRST_BUILD = 'demo-1';

export function isScenario(s: string): s is ScenarioName {
  return (SCENARIOS as readonly string[]).includes(s);
}
