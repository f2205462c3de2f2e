/**
 * The load kit: paced HTTP clients that put the kv example under a PUT/GET load and check every
 * acknowledged write, with the statistics and the handoff timeline to report it. Used by
 * `handoff demo` and by the benches; not part of the package's exports.
 */

export { LoadGenerator, httpRequest, type Failure, type LoadOptions, type LoadResult, type RequestMethod, type Sample, type VerifyResult } from './generator.js';
export { INTERVAL_MS, PUT_RATIO, clientSplit, loadOptions } from './profile.js';
export { fmtMs, percentile, summarize, type Summary } from './stats.js';
export { placeInTime, splitLatency, type HandoffRun, type LatencySplit } from './timeline.js';
