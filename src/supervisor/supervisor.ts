/**
 * The supervisor (S): owns the listeners for its whole life, keeps one incumbent serving (restarting
 * it with backoff when it dies between handoffs), and runs one handoff at a time through the table
 * in handoff.ts. Everything it learns about a child comes from that child's own socketpair.
 */

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.js';
import { NIL_ID, PROTO_MAX, PROTO_MIN, idEquals, messageHandoffId, newHandoffId, type HandoffId, type Hello, type Message } from '../protocol/messages.js';
import { negotiateVersion } from '../protocol/version.js';
import { clearLock, isLockHeld } from '../service/lock.js';
import { ServiceChild, spawnLauncher, type ChildRole, type Launcher } from './child.js';
import { ExecNotAllowedError, isAllowedExec } from './allowlist.js';
import { Handoff, LATE_TYPES, incumbentEvent, successorEvent, type HandoffContext } from './handoff.js';
import { bindListeners, inheritedListeners, parseListen, type HeldListener } from './listeners.js';
import { PhaseHistograms } from './metrics.js';
import { StateDir } from './state-dir.js';
import type {
  HandoffEvent,
  HandoffRecord,
  IncumbentInfo,
  SupervisorApi,
  SupervisorEvents,
  SupervisorMetrics,
  SupervisorOptions,
  SupervisorState,
  SupervisorStatus,
  UpgradeRequest,
} from './types.js';

/** An incumbent must stay up this long before its restart backoff resets. */
const STABLE_MS = 30_000;

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
  private last: HandoffRecord | null = null;
  private recovered: HandoffRecord | null = null;
  private readonly counts = { committed: 0, aborted: 0, interrupted: 0 };
  private readonly histograms = new PhaseHistograms();
  /** The id of the handoff that ended last, until the next one starts: see isLate(). */
  private lastEndedId: HandoffId | null = null;
  private firstReady = false;
  private readyWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(
    readonly opts: SupervisorOptions,
    private readonly log: Logger,
    /** How children are started: real processes, unless an in-process test drives S over sockets. */
    private readonly launch: Launcher = spawnLauncher,
  ) {
    super();
    this.stateDir = new StateDir(opts.stateDir);
  }

  // --- lifecycle ------------------------------------------------------------------------------

  /** Claims the state dir, takes the listeners, starts the first incumbent; resolves when it serves. */
  async start(): Promise<void> {
    this.stateDir.claim();
    this.recoverJournal();
    const specs = this.opts.listen.map(parseListen);
    const inherited = inheritedListeners(process.env);
    if (inherited && specs.length > 0) {
      for (const l of inherited) l.close();
      throw new Error('both --listen and sockets from systemd (LISTEN_FDS) were given: use one');
    }
    this.held = inherited ?? (await bindListeners(specs));
    this.log.info({ listeners: this.held.map((l) => ({ name: l.name, address: l.address })) }, 'listeners held');
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
      await inc.retire(this.opts.drainGraceMs + 1000, this.opts.killAfterMs);
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

  private coldStart(): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = this.firstReady ? 'restarting' : 'starting';
    const child = this.spawn('cold-start', this.opts.command, this.opts.args);
    this.incumbent = child;
    const timer = setTimeout(() => {
      if (child.hello === undefined && child.alive) {
        this.log.error({ pid: child.pid }, `no Hello within ${this.opts.helloTimeoutMs} ms: killing the cold start`);
        child.kill('SIGKILL');
      }
    }, this.opts.helloTimeoutMs);
    void child.exited.then(() => clearTimeout(timer));
  }

  private scheduleRestart(reason: string): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'restarting';
    this.restartAttempt++;
    const delayMs = Math.min(this.opts.restartInitialMs * 2 ** (this.restartAttempt - 1), this.opts.restartMaxMs);
    this.restarts++;
    this.log.warn({ attempt: this.restartAttempt, delay_ms: delayMs, reason }, 'incumbent down: restarting');
    this.emit('restart', { attempt: this.restartAttempt, delayMs, reason });
    this.restartTimer = setTimeout(() => this.coldStart(), delayMs);
  }

  private childExited(child: ServiceChild): void {
    this.log.info({ pid: child.pid, role: child.role, exit: child.describeExit() }, 'child reaped');
    const h = this.handoff;
    if (h && (child === h.o || child === h.n)) {
      h.dispatch({ kind: child === h.n ? 'n_exit' : 'o_exit' });
      return;
    }
    if (child !== this.incumbent) return;
    // The incumbent died between handoffs: S reaped it, so its lock can go, then a cold start.
    this.incumbent = null;
    this.clearLock(child.pid);
    if (Date.now() - child.startedAt.getTime() >= STABLE_MS) this.restartAttempt = 0;
    this.scheduleRestart(`incumbent ${child.describeExit()}`);
  }

  private channelClosed(child: ServiceChild, err: ProtocolError): void {
    if (!child.alive) return;
    if (err.kind === 'peer_closed') {
      // Usually the process is dying and its exit is on the way; if it is not, S cannot drive it.
      const t = setTimeout(() => {
        if (child.alive) this.violation(child, new ProtocolError('peer_closed', 'the control channel closed while the process lives'));
      }, 200);
      void child.exited.then(() => clearTimeout(t));
      return;
    }
    this.violation(child, err);
  }

  /** A child broke the protocol: a handoff party goes through the table; otherwise it is killed. */
  private violation(child: ServiceChild, err: ProtocolError): void {
    this.log.warn({ pid: child.pid, kind: err.kind, detail: err.detail }, 'protocol violation');
    const h = this.handoff;
    if (h && (child === h.o || child === h.n)) {
      h.dispatch({ kind: child === h.n ? 'n_violation' : 'o_violation', err });
      return;
    }
    // S can no longer talk to it; only after it is reaped may its lock be cleared and a new one start.
    child.kill('SIGKILL');
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
    const info = this.incumbentInfo();
    this.log.info({ pid: child.pid, build_id: info?.build_id }, 'incumbent serving');
    if (!this.firstReady && info) {
      this.firstReady = true;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      this.emit('ready', info);
    }
  }

  private heartbeat(): void {
    const ts = BigInt(Date.now());
    const h = this.handoff;
    const peers = new Set<ServiceChild>();
    if (this.incumbent?.alive) peers.add(this.incumbent);
    if (h?.o?.alive) peers.add(h.o);
    if (h?.n.alive) peers.add(h.n);
    const now = performance.now();
    for (const p of peers) {
      // Nothing before HelloAck: a strict peer accepts only HelloAck as S's first frame.
      if (!p.acked) continue;
      p.channel.send({ type: 'Heartbeat', ts_ms: ts });
      const silentMs = now - p.channel.lastReceived;
      if (h && h.phase !== 'done' && silentMs > this.opts.heartbeatTimeoutMs) {
        const side = p === h.n ? 'N' : 'O';
        this.log.error({ pid: p.pid, silent_ms: Math.round(silentMs), side }, 'peer silent: killing it');
        h.killedForSilence ??= side;
        p.kill('SIGKILL');
      }
    }
  }

  // --- locks ----------------------------------------------------------------------------------

  private clearLock(holderPid: number): void {
    if (this.opts.lockPath === undefined) return;
    if (isLockHeld(this.opts.lockPath)) {
      this.log.warn({ holder: holderPid, lock: this.opts.lockPath }, 'clearing the lock of a reaped process');
      clearLock(this.opts.lockPath, holderPid, this.opts.env ?? process.env);
    }
  }

  // --- the API --------------------------------------------------------------------------------

  upgrade(req: UpgradeRequest, onEvent?: (e: HandoffEvent) => void): Promise<HandoffRecord> {
    if (this.handoff) return Promise.reject(new ProtocolError('handoff_in_progress', `handoff ${this.handoff.idStr} is in phase ${this.handoff.phase}`));
    if (this.state !== 'serving' || !this.incumbent?.alive || this.incumbent.hello === undefined) {
      return Promise.reject(new ProtocolError('incumbent_failed', `no incumbent is serving (supervisor is ${this.state})`));
    }
    const command = req.command ?? this.opts.command;
    const args = req.args ?? (req.command === undefined ? this.opts.args : []);
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
    this.log.info({ handoff_id: h.idStr, phase: 'spawn', incumbent: o.pid, successor: n.pid }, 'handoff started');
    ctx.journal('spawn');
    ctx.emit(h.event('spawn', { detail: `successor pid ${n.pid}` }));
    ctx.emit(h.event('hello'));
    return promise;
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
    this.stateDir.append(record);
    this.stateDir.clearJournal();
    this.last = record;
    this.counts[record.outcome]++;
    for (const p of record.phases) this.histograms.observe(p.phase, p.ms);
    this.log.info({ handoff_id: record.handoff_id, phase: 'done', outcome: record.outcome, reason: record.reason, phases: record.phases, total_ms: record.total_ms }, `handoff ${record.outcome}`);
    if (record.outcome === 'committed') {
      this.incumbent = h.n;
      this.restartAttempt = 0;
    }
    const inc = this.incumbent;
    if (this.state !== 'stopping') {
      if (inc?.alive) this.state = 'serving';
      else {
        // The serving process died during the handoff (or right after it): cold start.
        this.incumbent = null;
        if (inc) this.clearLock(inc.pid);
        this.scheduleRestart('no live incumbent after the handoff');
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
      build_id: Buffer.from(inc.hello.build_id).toString('utf8'),
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
      recovered: this.recovered,
    };
  }

  history(limit?: number): HandoffRecord[] {
    return this.stateDir.history(limit);
  }

  metrics(): SupervisorMetrics {
    return { handoffs: { ...this.counts }, phaseHistograms: this.histograms.snapshot(), incumbentRestarts: this.restarts, phase: this.handoff && this.handoff.phase !== 'done' ? this.handoff.phase : null };
  }
}

export { ExecNotAllowedError };
