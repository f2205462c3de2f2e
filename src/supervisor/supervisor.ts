/**
 * The supervisor (S): owns the listeners for its whole life, keeps one incumbent serving (restarting
 * it with backoff when it dies between handoffs), and runs one handoff at a time through the table
 * in handoff.ts. Everything it learns about a child comes from that child's own socketpair.
 */

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ProtocolError, type ErrorKind } from '../protocol/errors.js';
import { NIL_ID, PROTO_MAX, PROTO_MIN, idEquals, messageHandoffId, newHandoffId, type HandoffId, type Hello, type Message } from '../protocol/messages.js';
import { negotiateVersion } from '../protocol/version.js';
import { DRAIN_SLACK_MS } from '../shared/constants.js';
import { clearLock, isLockHeld, lockOwner } from '../shared/lock.js';
import { ServiceChild, spawnLauncher, type ChildRole, type Launcher } from './child.js';
import { Clock } from './clock.js';
import { ExecNotAllowedError, isAllowedExec } from './allowlist.js';
import { Handoff, LATE_TYPES, incumbentEvent, successorEvent, type HandoffContext } from './handoff.js';
import { bindListeners, inheritedListeners, parseListen, type HeldListener } from './listeners.js';
import { PhaseHistograms } from './metrics.js';
import { StateDir } from './state-dir.js';
import type {
  FailureInfo,
  HandoffEvent,
  HandoffRecord,
  HistoryEntry,
  IncumbentInfo,
  ReloadableOptions,
  ServingCommand,
  SupervisorApi,
  SupervisorEvents,
  SupervisorMetrics,
  SupervisorOptions,
  SupervisorState,
  SupervisorStatus,
  UpgradeRequest,
} from './types.js';

/** How long a child whose control channel closed may take to be reaped before S calls it a violation. */
const CLOSED_CHANNEL_GRACE_MS = 1_000;

/** An incumbent must stay up this long before its restart backoff resets. */
export const STABLE_MS = 30_000;

/** The first cold starts failed `startLimit` times in a row: S gives up instead of looping. */
export class StartLimitError extends Error {
  override name = 'StartLimitError';
  constructor(
    message: string,
    readonly last: FailureInfo,
  ) {
    super(message);
  }
}

function sameCommand(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class Supervisor extends EventEmitter<SupervisorEvents> implements SupervisorApi {
  state: SupervisorState = 'starting';
  private held: HeldListener[] = [];
  private incumbent: ServiceChild | null = null;
  private handoff: Handoff | null = null;
  private waiters: Array<{ resolve: (r: HandoffRecord) => void; onEvent: ((e: HandoffEvent) => void) | undefined }> = [];
  private readonly stateDir: StateDir;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartAttempt = 0;
  private restarts = 0;
  /** Incumbent failures in a row with nothing serving in between, and the last one. */
  private consecutiveFailures = 0;
  private lastFailure: FailureInfo | null = null;
  private readonly failureCounts: Partial<Record<ErrorKind, number>> = {};
  /** Why S itself took an incumbent down (hung, unreachable, no Hello), for its failure record. */
  private readonly takedowns = new WeakMap<ServiceChild, ProtocolError>();
  /** What serves, as recorded in the state directory. */
  private serving: ServingCommand | undefined;
  private readonly clock: Clock;
  private last: HandoffRecord | null = null;
  private recovered: HandoffRecord | null = null;
  private readonly counts = { committed: 0, aborted: 0, interrupted: 0 };
  private readonly histograms = new PhaseHistograms();
  /** The id of the handoff that ended last, until the next one starts: see isLate(). */
  private lastEndedId: HandoffId | null = null;
  private firstReady = false;
  private readyWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(
    public opts: SupervisorOptions,
    private readonly log: Logger,
    /** How children are started: real processes, unless an in-process test drives S over sockets. */
    private readonly launch: Launcher = spawnLauncher,
  ) {
    super();
    this.stateDir = new StateDir(opts.stateDir);
    this.clock = new Clock((ms) => this.log.warn({ stalled_ms: ms }, 'the supervisor did not run for a while (stopped or starved); no peer is blamed for that time'));
  }

  // --- lifecycle ------------------------------------------------------------------------------

  /** Claims the state dir, takes the listeners, starts the first incumbent; resolves when it serves. */
  async start(): Promise<void> {
    this.stateDir.claim();
    const specs = this.opts.listen.map(parseListen);
    const inherited = inheritedListeners(process.env);
    if (inherited && specs.length > 0) {
      for (const l of inherited) l.close();
      throw new Error('both --listen and sockets from systemd (LISTEN_FDS) were given: use one');
    }
    this.held = inherited ?? (await bindListeners(specs));
    this.log.info({ listeners: this.held.map((l) => ({ name: l.name, address: l.address })) }, 'listeners held');
    // Only now: a start that fails before this (an address in use) leaves the journal for the next.
    this.recoverJournal();
    this.serving = this.stateDir.readServing();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
    const ready = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    this.coldStart();
    return ready;
  }

  /** Stops: aborts a handoff in flight, asks the incumbent to drain and exit, releases everything. */
  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.emit('stopping');
    this.log.info('stopping');
    clearTimeout(this.restartTimer);
    if (this.handoff) {
      const h = this.handoff;
      const done = new Promise<HandoffRecord>((resolve) => this.waiters.push({ resolve, onEvent: undefined }));
      h.dispatch({ kind: 'stop', err: new ProtocolError('supervisor_stopping', 'the supervisor is stopping') });
      await done;
    }
    const inc = this.incumbent;
    if (inc?.alive) {
      // The library drains on SIGTERM; the grace is the drain grace plus a little slack.
      inc.kill('SIGTERM');
      await inc.retire(this.opts.drainGraceMs + DRAIN_SLACK_MS, this.opts.killAfterMs);
    }
    for (const w of this.readyWaiters.splice(0)) w.reject(new Error('supervisor stopped before the incumbent served'));
    this.shutdown();
  }

  /** Immediate stop: kills every child (a second SIGINT). */
  kill(): void {
    for (const w of this.readyWaiters.splice(0)) w.reject(new Error('supervisor killed before the incumbent served'));
    this.incumbent?.kill('SIGKILL');
    this.handoff?.n.kill('SIGKILL');
    this.shutdown();
  }

  private shutdown(): void {
    clearInterval(this.heartbeatTimer);
    this.clock.close();
    clearTimeout(this.restartTimer);
    for (const l of this.held) l.close();
    this.held = [];
    this.stateDir.release();
    this.state = 'stopped';
    this.emit('stopped');
  }

  private recoverJournal(): void {
    const rec = this.stateDir.recoverInterrupted();
    if (!rec) return;
    this.log.warn({ handoff_id: rec.handoff_id, reason: rec.reason }, 'found an interrupted handoff in the journal');
    this.recovered = rec;
    this.counts.interrupted++;
  }

  // --- children -------------------------------------------------------------------------------

  private spawn(role: ChildRole, command: string, args: string[]): ServiceChild {
    const child = new ServiceChild({
      command,
      args,
      role,
      listeners: this.held.map((l) => ({ name: l.name, fd: l.fd })),
      env: this.opts.env ?? process.env,
      ...(this.opts.cwd !== undefined ? { cwd: this.opts.cwd } : {}),
      ...(this.opts.lockPath !== undefined ? { lockPath: this.opts.lockPath } : {}),
      heartbeatMs: this.opts.heartbeatMs,
      heartbeatTimeoutMs: this.opts.heartbeatTimeoutMs,
      drainGraceMs: this.opts.drainGraceMs,
    }, this.launch);
    this.log.info({ pid: child.pid, role, command }, 'spawned');
    child.channel.on('message', (m) => this.route(child, m));
    child.channel.on('close', (err) => this.channelClosed(child, err));
    void child.exited.then(() => this.childExited(child));
    return child;
  }

  /** The command a cold start or a plain upgrade runs: what last served, unless the configuration changed since. */
  private target(): string[] {
    const configured = [this.opts.command, ...this.opts.args];
    const rec = this.serving;
    if (!rec || !sameCommand(rec.configured, configured) || sameCommand(rec.command, configured)) return configured;
    const program = rec.command[0] ?? '';
    if (!isAllowedExec(program, this.opts.command, this.opts.allowExec)) {
      this.log.warn({ serving: rec.command }, 'the recorded serving command is no longer allowed (--allow-exec): using the configured one');
      return configured;
    }
    return rec.command;
  }

  private recordServing(child: ServiceChild): void {
    const rec: ServingCommand = { command: child.command, configured: [this.opts.command, ...this.opts.args], build_id: buildIdOf(child), at: new Date().toISOString() };
    const prev = this.serving;
    this.serving = rec;
    if (prev && sameCommand(prev.command, rec.command) && sameCommand(prev.configured, rec.configured) && prev.build_id === rec.build_id) return;
    try {
      this.stateDir.writeServing(rec);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot record the serving command in the state directory');
    }
  }

  private coldStart(): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = this.firstReady ? 'restarting' : 'starting';
    const [command, ...args] = this.target();
    const child = this.spawn('cold-start', command ?? this.opts.command, args);
    this.incumbent = child;
    const timer = this.clock.timer(this.opts.helloTimeoutMs, () => {
      if (child.acked || !child.alive) return;
      this.log.error({ pid: child.pid }, `no Hello within ${this.opts.helloTimeoutMs} ms: killing the cold start`);
      this.takedowns.set(child, new ProtocolError('deadline_exceeded', `the cold start said no Hello within ${this.opts.helloTimeoutMs} ms`));
      child.kill('SIGKILL');
    });
    void child.exited.then(() => timer.cancel());
  }

  /** Why an incumbent (or a cold start) is gone, from what S did to it, the lock, and its exit. */
  private failureOf(child: ServiceChild): ProtocolError {
    const taken = this.takedowns.get(child);
    if (taken) return taken;
    const spawnError = child.exitInfo?.spawnError;
    if (spawnError) return new ProtocolError('incumbent_failed', `${child.command[0] ?? ''} could not start (${spawnError})`);
    const lockPath = this.opts.lockPath;
    if (!child.acked && lockPath !== undefined && isLockHeld(lockPath)) {
      const owner = lockOwner(lockPath);
      if (owner?.pid !== child.pid) {
        const who = owner ? `pid ${owner.pid}` : 'a process that left no owner record';
        return new ProtocolError('lock_held', `the data-dir lock ${lockPath} is held by ${who}, not by a process of this supervisor`);
      }
    }
    return new ProtocolError('incumbent_failed', child.acked ? `incumbent ${child.describeExit()}` : `cold start ${child.describeExit()} before Hello`);
  }

  private noteFailure(child: ServiceChild, reason: ProtocolError): FailureInfo {
    this.consecutiveFailures++;
    this.failureCounts[reason.kind] = (this.failureCounts[reason.kind] ?? 0) + 1;
    const f: FailureInfo = {
      at: new Date().toISOString(),
      reason: reason.toReason(),
      reason_kind: reason.kind,
      pid: child.pid,
      exit: child.describeExit(),
      stderr_tail: child.stderrTail.get(),
      consecutive: this.consecutiveFailures,
    };
    this.lastFailure = f;
    this.log.error({ child_pid: f.pid, reason: f.reason, exit: f.exit, stderr_tail: f.stderr_tail, consecutive: f.consecutive }, 'incumbent failed');
    return f;
  }

  private scheduleRestart(reason: ProtocolError, failed: FailureInfo | null, child: ServiceChild | null, immediate = false): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'restarting';
    this.restartAttempt++;
    const delayMs = immediate ? 0 : Math.min(this.opts.restartInitialMs * 2 ** (this.restartAttempt - 1), this.opts.restartMaxMs);
    this.restarts++;
    this.log.warn({ attempt: this.restartAttempt, delay_ms: delayMs, reason: reason.toReason() }, 'incumbent down: restarting');
    this.stateDir.append({
      kind: 'restart',
      at: new Date().toISOString(),
      reason: reason.toReason(),
      reason_kind: reason.kind,
      pid: child?.pid ?? 0,
      exit: child?.describeExit() ?? 'none',
      command: child?.command ?? this.target(),
      stderr_tail: failed?.stderr_tail ?? [],
      attempt: this.restartAttempt,
      delay_ms: delayMs,
    });
    this.emit('restart', { attempt: this.restartAttempt, delayMs, reason: reason.toReason() });
    this.restartTimer = setTimeout(() => this.coldStart(), delayMs);
  }

  private childExited(child: ServiceChild): void {
    this.log.info({ child_pid: child.pid, role: child.role, exit: child.describeExit() }, 'child reaped');
    const h = this.handoff;
    if (h && (child === h.o || child === h.n)) {
      h.dispatch({ kind: child === h.n ? 'n_exit' : 'o_exit' });
      return;
    }
    if (child !== this.incumbent) return;
    // The incumbent died between handoffs: S reaped it, so its lock can go, then a cold start.
    this.incumbent = null;
    const reason = this.failureOf(child);
    this.clearLock(child.pid);
    const failed = this.noteFailure(child, reason);
    if (!this.firstReady && this.consecutiveFailures >= this.opts.startLimit) {
      this.giveUp(failed);
      return;
    }
    if (Date.now() - child.startedAt.getTime() >= STABLE_MS) this.restartAttempt = 0;
    this.scheduleRestart(reason, failed, child);
  }

  /** Nothing ever served and every cold start failed: a setup mistake, reported rather than retried forever. */
  private giveUp(last: FailureInfo): void {
    const msg = `the service failed ${last.consecutive} times in a row before it ever served (--start-limit ${this.opts.startLimit}); last: ${last.reason}`;
    this.log.fatal({ reason: last.reason, exit: last.exit, stderr_tail: last.stderr_tail }, msg);
    this.state = 'stopped';
    const err = new StartLimitError(msg, last);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  private channelClosed(child: ServiceChild, err: ProtocolError): void {
    if (!child.alive) return;
    if (err.kind === 'peer_closed') {
      // Usually the process is dying and its exit is on the way; if it is not, S cannot drive it.
      // On a loaded machine the exit can be reaped well after the socket closed: judge in S's
      // running time, after pending I/O (the SIGCHLD), and give it a second.
      const t = this.clock.timer(CLOSED_CHANNEL_GRACE_MS, () => {
        if (child.alive) this.violation(child, new ProtocolError('peer_closed', 'the control channel closed while the process lives'));
      });
      void child.exited.then(() => t.cancel());
      return;
    }
    this.violation(child, err);
  }

  /** A child broke the protocol: a handoff party goes through the table; an incumbent at rest is retired. */
  private violation(child: ServiceChild, err: ProtocolError): void {
    this.log.warn({ child_pid: child.pid, kind: err.kind, detail: err.detail }, 'protocol violation');
    const h = this.handoff;
    if (h && (child === h.o || child === h.n)) {
      h.dispatch({ kind: child === h.n ? 'n_violation' : 'o_violation', err });
      return;
    }
    if (child === this.incumbent) {
      this.retireUnreachable(child, err);
      return;
    }
    child.kill('SIGKILL');
  }

  /**
   * An incumbent S can no longer talk to still serves: it is stopped gently (SIGTERM: the library
   * drains, closes and lets the lock go) rather than killed, and a cold start follows its exit.
   */
  private retireUnreachable(child: ServiceChild, err: ProtocolError): void {
    if (this.takedowns.has(child)) return;
    this.takedowns.set(child, err);
    this.log.error({ child_pid: child.pid, reason: err.toReason() }, 'S cannot drive the incumbent any more: stopping it gracefully, then a cold start');
    child.kill('SIGTERM');
    void child.retire(this.opts.drainGraceMs + DRAIN_SLACK_MS, this.opts.killAfterMs);
  }

  // --- messages -------------------------------------------------------------------------------

  private route(child: ServiceChild, m: Message): void {
    if (m.type === 'Heartbeat') return;
    const h = this.handoff;
    const isN = h !== null && child === h.n;
    const isO = h !== null && child === h.o;
    if ((isN || isO) && m.type !== 'Hello') {
      const id = messageHandoffId(m);
      if (id !== undefined && !idEquals(id, h.id)) {
        // Failing the channel closes it, and channelClosed reports the violation.
        child.channel.fail(new ProtocolError('handoff_id_mismatch', `${m.type} names another handoff`));
        return;
      }
    }
    if (isN) {
      const ev = successorEvent(m);
      if (ev) h.dispatch(ev);
      else this.refuse(child, m);
      return;
    }
    if (isO) {
      const ev = incumbentEvent(m);
      if (ev) h.dispatch(ev);
      else this.refuse(child, m);
      return;
    }
    if (m.type === 'Hello' && child === this.incumbent && child.hello === undefined) {
      this.acceptIncumbent(child, m);
      return;
    }
    if (this.isLate(child, m)) {
      // It crossed S's Abort on the wire: the incumbent did nothing wrong.
      this.log.debug({ pid: child.pid, type: m.type }, 'late message of an ended handoff ignored');
      return;
    }
    this.refuse(child, m);
  }

  /** A message the incumbent may still send for the handoff that just ended (Drained has no id). */
  private isLate(child: ServiceChild, m: Message): boolean {
    const ended = this.lastEndedId;
    if (ended === null || child !== this.incumbent || !LATE_TYPES.has(m.type)) return false;
    const id = messageHandoffId(m);
    return id === undefined || idEquals(id, ended);
  }

  private refuse(child: ServiceChild, m: Message): void {
    const err = new ProtocolError('unexpected_message', `${m.type} from the ${child.role === 'successor' ? 'successor' : 'incumbent'} in state ${this.state}`);
    child.channel.fail(err);
  }

  /** Checks a Hello against the child S spawned, negotiates, and answers HelloAck. */
  private ack(child: ServiceChild, hello: Hello, role: Hello['role'], id: HandoffId): void {
    if (hello.pid !== child.pid) throw new ProtocolError('pid_mismatch', `Hello says pid ${hello.pid}, the process on this channel is ${child.pid}`);
    if (hello.role !== role) throw new ProtocolError('unexpected_message', `Hello with role ${hello.role} from a process started as ${child.role}`);
    const chosen = negotiateVersion(PROTO_MIN, PROTO_MAX, hello.proto_min, hello.proto_max);
    child.channel.send({ type: 'HelloAck', proto_version_chosen: chosen, handoff_id: id });
    child.channel.version = chosen;
    child.hello = hello;
  }

  private acceptIncumbent(child: ServiceChild, hello: Hello): void {
    try {
      this.ack(child, hello, 'Incumbent', NIL_ID);
    } catch (err) {
      const e = err instanceof ProtocolError ? err : new ProtocolError('malformed_message', 'bad Hello');
      child.channel.fail(e);
      return;
    }
    this.state = 'serving';
    this.consecutiveFailures = 0;
    this.recordServing(child);
    const info = this.incumbentInfo();
    this.log.info({ child_pid: child.pid, build_id: info?.build_id, command: child.command }, 'incumbent serving');
    if (!this.firstReady && info) {
      this.firstReady = true;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      this.emit('ready', info);
    }
  }

  /** The live processes S has acknowledged: nothing but HelloAck may reach a peer before that. */
  private peers(): ServiceChild[] {
    const h = this.handoff;
    const peers = new Set<ServiceChild>();
    if (this.incumbent) peers.add(this.incumbent);
    if (h?.o) peers.add(h.o);
    if (h) peers.add(h.n);
    return [...peers].filter((p) => p.alive && p.acked);
  }

  private heartbeat(): void {
    const ts = BigInt(Date.now());
    for (const p of this.peers()) p.channel.send({ type: 'Heartbeat', ts_ms: ts });
    // Judge silence after the poll phase has read what is waiting (S may just have been stopped).
    setImmediate(() => this.judgeSilence());
  }

  /** A peer silent (in S's running time) past the timeout: killed, and the reason remembered. */
  private judgeSilence(): void {
    const h = this.handoff;
    for (const p of this.peers()) {
      const silentMs = this.clock.silentFor(p.channel.lastReceived);
      if (silentMs <= this.opts.heartbeatTimeoutMs) continue;
      if (h && h.phase !== 'done' && (p === h.n || p === h.o)) {
        const side = p === h.n ? 'N' : 'O';
        this.log.error({ child_pid: p.pid, silent_ms: Math.round(silentMs), side }, 'peer silent: killing it');
        h.killedForSilence ??= side;
        p.kill('SIGKILL');
      } else if (p === this.incumbent && !this.takedowns.has(p)) {
        // systemd's WatchdogSec, for the incumbent at rest: a hung process serves nobody.
        this.log.error({ child_pid: p.pid, silent_ms: Math.round(silentMs) }, 'incumbent silent at rest: killing it and starting a fresh one');
        this.takedowns.set(p, new ProtocolError('incumbent_hung', `no heartbeat from the incumbent for ${Math.round(silentMs)} ms`));
        p.kill('SIGKILL');
      }
    }
  }

  // --- locks ----------------------------------------------------------------------------------

  /** Removes the lock of a child S has reaped, and only if the lock's owner record names it. */
  private clearLock(reapedPid: number): void {
    if (this.opts.lockPath === undefined) return;
    const r = clearLock(this.opts.lockPath, reapedPid, this.opts.env ?? process.env);
    if (r.cleared) this.log.warn({ holder: reapedPid, lock: this.opts.lockPath }, 'cleared the lock of a reaped process');
    else if (r.why === 'not-owner') this.log.warn({ reaped: reapedPid, holder: r.holderPid ?? null, lock: this.opts.lockPath }, 'the lock is not the reaped process’s: left alone');
  }

  // --- the API --------------------------------------------------------------------------------

  upgrade(req: UpgradeRequest, onEvent?: (e: HandoffEvent) => void): Promise<HandoffRecord> {
    if (this.handoff) return Promise.reject(new ProtocolError('handoff_in_progress', `handoff ${this.handoff.idStr} is in phase ${this.handoff.phase}`));
    if (this.state !== 'serving' || !this.incumbent?.alive || this.incumbent.hello === undefined) {
      return Promise.reject(new ProtocolError('incumbent_failed', `no incumbent is serving (supervisor is ${this.state})`));
    }
    if (req.command === undefined) {
      try {
        this.reload();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    const [planned, ...plannedArgs] = this.target();
    const command = req.command ?? planned ?? this.opts.command;
    const args = req.args ?? (req.command === undefined ? plannedArgs : []);
    if (req.command !== undefined && !isAllowedExec(req.command, this.opts.command, this.opts.allowExec)) {
      return Promise.reject(new ExecNotAllowedError(req.command));
    }
    const id = newHandoffId();
    this.lastEndedId = null;
    const o = this.incumbent;
    const n = this.spawn('successor', command, args);
    // From its first byte N is part of this handoff: any violation of its gets an Abort naming it.
    n.channel.handoffId = id;
    const ctx = this.handoffContext(req);
    const h = new Handoff(id, o, n, [command, ...args], ctx);
    this.handoff = h;
    this.state = 'handoff';
    const promise = new Promise<HandoffRecord>((resolve) => this.waiters.push({ resolve, onEvent }));
    this.log.info({ handoff_id: h.idStr, phase: 'spawn', incumbent: o.pid, successor: n.pid, command: [command, ...args] }, 'handoff started');
    ctx.journal('hello');
    ctx.emit(h.event('spawn', { detail: `successor pid ${n.pid}` }));
    ctx.emit(h.event('hello'));
    return promise;
  }



  /** Re-reads the configuration (when S was given a way to): a changed command is the next target. */
  private reload(): void {
    if (!this.opts.reload) return;
    const next: ReloadableOptions = this.opts.reload();
    const before = [this.opts.command, ...this.opts.args];
    this.opts = { ...this.opts, command: next.command, args: next.args, allowExec: next.allowExec };
    if (!sameCommand(before, [next.command, ...next.args])) this.log.info({ previous: before, configured: [next.command, ...next.args] }, 'configuration reloaded: the configured command changed');
  }

  private handoffContext(req: UpgradeRequest): HandoffContext {
    const o = this.opts;
    let h: Handoff | undefined;
    const ctx: HandoffContext = {
      deadlineMs: req.deadlineMs ?? o.deadlineMs,
      drainGraceMs: req.drainGraceMs ?? o.drainGraceMs,
      helloTimeoutMs: o.helloTimeoutMs,
      exitTimeoutMs: o.exitTimeoutMs,
      killAfterMs: o.killAfterMs,
      ackSuccessor: (n, hello, id) => this.ack(n, hello, 'Successor', id),
      lockHeld: () => o.lockPath !== undefined && isLockHeld(o.lockPath),
      timer: (ms, fn) => this.clock.timer(ms, fn),
      clearLock: (pid) => this.clearLock(pid),
      emit: (e) => {
        for (const w of this.waiters) w.onEvent?.(e);
        this.emit('handoff', e);
      },
      journal: (phase) => {
        h ??= this.handoff ?? undefined;
        if (!h) return;
        this.stateDir.writeJournal({
          handoff_id: h.idStr,
          phase,
          incumbent_pid: h.o?.pid ?? null,
          successor_pid: h.n.pid || null,
          started_at: h.startedAt.toISOString(),
          command: h.command,
          supervisor_pid: process.pid,
        });
      },
      log: (level, msg, extra) => {
        h ??= this.handoff ?? undefined;
        this.log[level]({ handoff_id: h?.idStr, phase: h?.phase, ...extra }, msg);
      },
      done: (handoff, record) => this.handoffDone(handoff, record),
    };
    return ctx;
  }

  private handoffDone(h: Handoff, record: HandoffRecord): void {
    this.handoff = null;
    this.lastEndedId = h.id;
    // Over: a later violation by either process is not this handoff's, and no Abort may name it.
    h.n.channel.handoffId = undefined;
    if (h.o) h.o.channel.handoffId = undefined;
    this.stateDir.append(record);
    this.stateDir.clearJournal();
    this.last = record;
    this.counts[record.outcome]++;
    for (const p of record.phases) this.histograms.observe(p.phase, p.ms);
    this.log.info({ handoff_id: record.handoff_id, phase: 'done', outcome: record.outcome, reason: record.reason, phases: record.phases, total_ms: record.total_ms }, `handoff ${record.outcome}`);
    if (record.outcome === 'committed') {
      this.incumbent = h.n;
      this.restartAttempt = 0;
      if (h.n.alive) this.recordServing(h.n);
    }
    const inc = this.incumbent;
    if (this.state !== 'stopping') {
      if (inc?.alive) this.state = 'serving';
      else {
        // The serving process died during the handoff (or right after Commit): a cold start at
        // once, while connections wait in the kernel's queue; no backoff for a first failure.
        this.incumbent = null;
        const reason = inc ? this.failureOf(inc) : new ProtocolError('incumbent_failed', 'no incumbent after the handoff');
        if (inc) this.clearLock(inc.pid);
        const failed = inc ? this.noteFailure(inc, reason) : null;
        this.scheduleRestart(reason, failed, inc, true);
      }
    }
    for (const w of this.waiters.splice(0)) w.resolve(record);
  }

  abort(reason: string): boolean {
    const h = this.handoff;
    if (!h || h.phase === 'commit' || h.phase === 'rollback' || h.phase === 'done') return false;
    h.dispatch({ kind: 'operator_abort', reason });
    return true;
  }

  private incumbentInfo(): IncumbentInfo | null {
    const inc = this.incumbent;
    if (!inc?.hello) return null;
    return {
      pid: inc.pid,
      build_id: buildIdOf(inc),
      command: inc.command,
      started_at: inc.startedAt.toISOString(),
      uptime_ms: Date.now() - inc.startedAt.getTime(),
    };
  }

  status(): SupervisorStatus {
    const h = this.handoff;
    return {
      pid: process.pid,
      state: this.state,
      incumbent: this.incumbentInfo(),
      listeners: this.held.map((l) => ({ name: l.name, address: l.address })),
      inflight: h
        ? { handoff_id: h.idStr, phase: h.phase === 'done' ? 'done' : h.phase, started_at: h.startedAt.toISOString(), successor_pid: h.n.pid || null, elapsed_ms: Date.now() - h.startedAt.getTime() }
        : null,
      last: this.last,
      incumbent_restarts: this.restarts,
      last_failure: this.lastFailure,
      recovered: this.recovered,
    };
  }

  history(limit?: number): HistoryEntry[] {
    return this.stateDir.history(limit);
  }

  metrics(): SupervisorMetrics {
    return { handoffs: { ...this.counts }, phaseHistograms: this.histograms.snapshot(), incumbentRestarts: this.restarts, incumbentFailures: { ...this.failureCounts }, phase: this.handoff && this.handoff.phase !== 'done' ? this.handoff.phase : null };
  }
}

export { ExecNotAllowedError };

function buildIdOf(child: ServiceChild): string {
  return child.hello ? Buffer.from(child.hello.build_id).toString('utf8') : '';
}
