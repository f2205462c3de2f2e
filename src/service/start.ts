/**
 * How a process starts, by role: standalone (no S), cold start (lock, open, accept, then Hello),
 * or successor (Hello, then wait: Begin is the successor flow's). A stateless successor (no lock
 * to wait for) asks health first and, when healthy, accepts beside the incumbent before its Hello,
 * so the incumbent stops accepting only once it does. Each resolves the start() promise through
 * becomeServing once it serves.
 */

import { ProtocolError, idToString, isNilId } from '../protocol/index.js';
import type { SupervisorLink } from './link.js';
import type { Runtime } from './runtime.js';
import { firstLine, toU64List } from './wire.js';

export async function runStandalone(rt: Runtime): Promise<void> {
  rt.logger.info({ role: 'standalone' }, 'no supervisor: serving on our own');
  if (!(await takeLockOrExit(rt))) return;
  if (!(await openOrExit(rt))) return;
  await rt.accept.start();
  rt.becomeServing();
}

export async function runColdStart(rt: Runtime, link: SupervisorLink): Promise<void> {
  const channel = link.open();
  if (!(await takeLockOrExit(rt))) return;
  if (!(await openOrExit(rt))) return;
  try {
    await rt.accept.start();
  } catch (err) {
    return rt.fatal('cannot accept on the inherited listeners', err);
  }
  rt.becomeServing();
  const ack = await link.hello(channel, 'Incumbent');
  if (!ack) return;
  if (!isNilId(ack.handoff_id)) rt.logger.warn({ handoff_id: idToString(ack.handoff_id) }, 'HelloAck for a cold start carries a handoff id; ignored');
  void link.loop(channel);
}

export async function runSuccessor(rt: Runtime, link: SupervisorLink): Promise<void> {
  const channel = link.open();
  // Ready the listener duplicates while S gets on with the handoff.
  rt.accept.pool.fill().catch((err: unknown) => rt.logger.warn({ err: firstLine(err) }, 'prefetching listener duplicates failed'));
  if (rt.stateless && !(await acceptEarly(rt))) return;
  const ack = await link.hello(channel, 'Successor');
  if (!ack) return;
  if (isNilId(ack.handoff_id)) {
    link.end(new ProtocolError('handoff_id_mismatch', 'HelloAck to a successor carries the nil handoff id'));
    return;
  }
  // A stop or an exit during the Hello owns the ending.
  const s = rt.state;
  if (s.phase === 'overlapping') rt.enter({ phase: 'overlapping', handoff: ack.handoff_id });
  else if (s.phase === 'starting') rt.enter({ phase: 'awaiting-begin', handoff: ack.handoff_id });
  else return;
  channel.handoffId = ack.handoff_id;
  void link.loop(channel);
}

/**
 * A stateless successor, before its Hello: healthy → accept beside the incumbent (`overlapping`);
 * not healthy → accept nothing (Begin asks again). False when a stop came meanwhile.
 */
async function acceptEarly(rt: Runtime): Promise<boolean> {
  if (!(await rt.askHealth())) {
    rt.logger.warn('not healthy yet: not accepting before Begin');
    return rt.phase === 'starting';
  }
  if (rt.phase !== 'starting') return false;
  try {
    await rt.accept.start();
  } catch (err) {
    await rt.fatal('cannot accept on the inherited listeners', err);
    return false;
  }
  if (rt.phase !== 'starting') return false;
  rt.enter({ phase: 'overlapping', handoff: undefined });
  rt.logger.info('stateless: healthy, accepting beside the incumbent');
  return true;
}


async function takeLockOrExit(rt: Runtime): Promise<boolean> {
  if (!rt.lock) return true;
  try {
    await rt.lock.acquire();
    rt.logger.info({ lockPath: rt.lock.lockPath }, 'data-dir lock taken');
    return true;
  } catch (err) {
    rt.logger.fatal({ err: firstLine(err), lockPath: rt.lock.lockPath }, 'cannot take the data-dir lock');
    await rt.exit(1);
    return false;
  }
}

async function openOrExit(rt: Runtime): Promise<boolean> {
  if (!rt.opts.open) return true; // stateless: nothing to open
  try {
    const res = await rt.opts.open();
    toU64List(res.revisions, 'open().revisions');
    return true;
  } catch (err) {
    await rt.fatal('open failed', err);
    return false;
  }
}
