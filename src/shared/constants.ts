/** Numbers more than one module needs; each is defined here once and imported. */

/**
 * The longest delay a Node timer takes (2^31-1 ms, about 24.8 days): a longer one fires at once
 * (Node warns and uses 1 ms). Every duration S or the library turns into a timer is capped by it.
 */
export const TIMER_MAX_MS = 2 ** 31 - 1;

/**
 * What S adds to the drain grace before it escalates, when a child drains on its word (an incumbent
 * S stops with SIGTERM, a successor aborted after Begin, the wait for Drained). The library's stop
 * drains for the drain grace itself (HANDOFF_DRAIN_GRACE_MS), so it ends within S's patience.
 */
export const DRAIN_SLACK_MS = 1_000;
