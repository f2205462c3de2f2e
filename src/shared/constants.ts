/** Numbers more than one module needs; each is defined here once and imported. */

/**
 * The longest delay a Node timer takes (2^31-1 ms, about 24.8 days): a longer one fires at once
 * (Node warns and uses 1 ms). Every duration S or the library turns into a timer is capped by it.
 */
export const TIMER_MAX_MS = 2 ** 31 - 1;
