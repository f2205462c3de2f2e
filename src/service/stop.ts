/**
 * Stopping on request (SIGTERM, SIGINT, or stop()): stop accepting, drain, close, let the lock go,
 * exit 0. A second request does not wait for the first. Which phase stops how is the table's
 * `stop` column (machine.ts).
 */

import type { Runtime } from './runtime.js';

/** Drain grace of a stop when neither the option nor S (HANDOFF_DRAIN_GRACE_MS) sets one. */
export const DEFAULT_STOP_GRACE_MS = 10_000;

/** Routes SIGTERM and SIGINT to `stop`; returns what removes the handlers again. */
export function handleSignals(rt: Runtime, stop: () => Promise<void>): () => void {
  const onSignal = (sig: NodeJS.Signals): void => {
    rt.logger.info({ signal: sig }, 'stopping on signal');
    void stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}

/** The stop of a process that may have served: its clients are drained, never reset. */
export async function stopServing(rt: Runtime, code = 0): Promise<void> {
  // Leaving the phase is what makes a drain, a deadline or a resume in flight stand down.
  rt.enter({ phase: 'stopping', handoff: rt.inFlight });
  await rt.accept.stop();
  // S's grace by default: S kills us after it (+1 s), so a longer drain would be cut short.
  const left = await rt.accept.drain(rt.opts.stopGraceMs ?? rt.contract.drainGraceMs ?? DEFAULT_STOP_GRACE_MS);
  rt.logger.info({ open_conns_remaining: left }, 'drained for stop');
  await rt.runClose();
  await rt.releaseLock();
  return rt.exit(code);
}

/** A second stop request while the first drains. */
export function stopAtOnce(rt: Runtime): Promise<void> {
  rt.logger.warn('second stop request: exiting now');
  return rt.exit(1);
}
