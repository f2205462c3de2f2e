/**
 * The supervisor (S): owns the listeners for its whole life, keeps one incumbent serving (restarting
 * it with backoff when it dies between handoffs: restarts.ts), and runs one handoff at a time
 * (handoff-runner.ts, through the table in handoff.ts). Everything it learns about a child comes from
 * that child's own socketpair.
 */

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.js';
import { NIL_ID, PROTO_MAX, PROTO_MIN, type HandoffId, type Hello, type Message } from '../protocol/messages.js';
import { negotiateVersion } from '../protocol/version.js';
import { DRAIN_SLACK_MS } from '../shared/constants.js';
import { clearLock } from '../shared/lock.js';
import { ExecNotAllowedError, isAllowedExec } from './allowlist.js';
import { ServiceChild, spawnLauncher, type ChildRole, type Launcher } from './child.js';
import { Clock } from './clock.js';
import type { Handoff } from './handoff.js';
import { HandoffRunner } from './handoff-runner.js';
import { bindListeners, inheritedListeners, parseListen, type HeldListener } from './listeners.js';
import { Restarts, StartLimitError } from './restarts.js';
import { Serving, reloadOptions } from './serving.js';
import { StateDir } from './state-dir.js';
import type { HandoffEvent, HandoffRecord, HistoryEntry, IncumbentInfo, SupervisorApi, SupervisorEvents, SupervisorMetrics, SupervisorOptions, SupervisorState, SupervisorStatus, UpgradeRequest } from './types.js';

/** How long a child whose control channel closed may take to be reaped before S calls it a violation. */
const CLOSED_CHANNEL_GRACE_MS = 1_000;

export class Supervisor extends EventEmitter<SupervisorEvents> implements SupervisorApi {
  state: SupervisorState = 'starting';
  private held: HeldListener[] = [];
  private incumbent: ServiceChild | null = null;
  private readonly stateDir: StateDir;
  private readonly clock: Clock;
  private readonly serving: Serving;
  private readonly restarts: Restarts;
  private readonly handoffs: HandoffRunner;
  private heartbeatTimer: NodeJS.Timeout | undefined;
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
    this.serving = new Serving(this.stateDir, log);
    const shared = { log, clock: this.clock, stateDir: this.stateDir, options: () => this.opts, clearLock: (pid: number) => this.clearLock(pid) };
    this.restarts = new Restarts({
      ...shared,
      state: () => this.state,
      setState: (s) => (this.state = s),
      everServed: () => this.firstReady,
      spawnIncumbent: () => this.spawnIncumbent(),
      target: () => this.target(),
      restarting: (info) => this.emit('restart', info),
      gaveUp: (err) => {
        for (const w of this.readyWaiters.splice(0)) w.reject(err);
      },
    });
    this.handoffs = new HandoffRunner({
      ...shared,
      spawnSuccessor: (command, args) => this.spawn('successor', command, args),
      ackSuccessor: (successor, hello, id) => this.ack(successor, hello, 'Successor', id),
      refuse: (child, m) => this.refuse(child, m),
      began: () => (this.state = 'handoff'),
      progress: (e) => this.emit('handoff', e),
      ended: (h, record) => this.handoffEnded(h, record),
    });
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
    this.handoffs.recoverJournal();
    this.serving.load();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
    const ready = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    this.restarts.coldStart();
    return ready;
  }

  /** Stops: aborts a handoff in flight, asks the incumbent to drain and exit, releases everything. */
  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.emit('stopping');
    this.log.info('stopping');
    this.restarts.cancel();
    await this.handoffs.stop();
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
    this.handoffs.current?.successor.kill('SIGKILL');
    this.shutdown();
  }

  private shutdown(): void {
    clearInterval(this.heartbeatTimer);
    this.clock.close();
    this.restarts.cancel();
    for (const l of this.held) l.close();
    this.held = [];
    this.stateDir.release();
    this.state = 'stopped';
    this.emit('stopped');
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
    }, this.launch, (ms, fn) => this.clock.timer(ms, fn));
    this.log.info({ child_pid: child.pid, role, command }, 'spawned');
    child.channel.on('message', (m) => this.route(child, m));
    child.channel.on('close', (err) => this.channelClosed(child, err));
    void child.exited.then(() => this.childExited(child));
    return child;
  }

  /** A cold start of what should serve, as the incumbent. */
  private spawnIncumbent(): ServiceChild {
    const [command, ...args] = this.target();
    const child = this.spawn('cold-start', command ?? this.opts.command, args);
    this.incumbent = child;
    return child;
  }

  /** The command a cold start or a plain upgrade runs. */
  private target(): string[] {
    return this.serving.target(this.opts);
  }

  private childExited(child: ServiceChild): void {
    this.log.info({ child_pid: child.pid, role: child.role, exit: child.describeExit() }, 'child reaped');
    if (this.handoffs.exited(child)) return;
    if (child !== this.incumbent) return;
    // The incumbent died between handoffs: S reaped it, so its lock can go, then a cold start.
    this.incumbent = null;
    this.restarts.incumbentDied(child);
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
    if (this.handoffs.violated(child, err)) return;
    if (child === this.incumbent) {
      this.restarts.retireUnreachable(child, err);
      return;
    }
    child.kill('SIGKILL');
  }

  // --- messages -------------------------------------------------------------------------------

  private route(child: ServiceChild, m: Message): void {
    if (m.type === 'Heartbeat') return;
    if (this.handoffs.route(child, m)) return;
    if (m.type === 'Hello' && child === this.incumbent && !child.acked) {
      this.acceptIncumbent(child, m);
      return;
    }
    if (child === this.incumbent && this.handoffs.isLate(m)) {
      // It crossed S's Abort on the wire: the incumbent did nothing wrong.
      this.log.debug({ child_pid: child.pid, type: m.type }, 'late message of an ended handoff ignored');
      return;
    }
    this.refuse(child, m);
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
    child.accept(hello);
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
    this.restarts.served();
    this.serving.record(child, this.opts);
    const info = this.incumbentInfo();
    this.log.info({ child_pid: child.pid, build_id: info?.build_id, command: child.command }, 'incumbent serving');
    if (!this.firstReady && info) {
      this.firstReady = true;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      this.emit('ready', info);
    }
  }

  // --- heartbeats -----------------------------------------------------------------------------

  /** The live processes S has acknowledged: nothing but HelloAck may reach a peer before that. */
  private peers(): ServiceChild[] {
    const peers = new Set<ServiceChild>();
    if (this.incumbent) peers.add(this.incumbent);
    for (const p of this.handoffs.parties()) peers.add(p);
    return [...peers].filter((p) => p.alive && p.acked);
  }

  private heartbeat(): void {
    // Both after the poll phase has read what is waiting (S may just have been stopped): a
    // Heartbeat written to a peer that died meanwhile fails with EPIPE, and the failed write
    // destroys the socket with its last frames unread (a Ready sent just before a SIGKILL).
    setImmediate(() => {
      const ts = BigInt(Date.now());
      for (const p of this.peers()) p.channel.send({ type: 'Heartbeat', ts_ms: ts });
      this.judgeSilence();
    });
  }

  /** A peer silent (in S's running time) past the timeout: killed, and the reason remembered. */
  private judgeSilence(): void {
    for (const p of this.peers()) {
      const silentMs = this.clock.silentFor(p.channel.lastReceived);
      if (silentMs <= this.opts.heartbeatTimeoutMs) continue;
      if (this.handoffs.killSilent(p, silentMs)) continue;
      if (p === this.incumbent && !this.restarts.takenDown(p)) {
        // systemd's WatchdogSec, for the incumbent at rest: a hung process serves nobody.
        this.log.error({ child_pid: p.pid, silent_ms: Math.round(silentMs) }, 'incumbent silent at rest: killing it and starting a fresh one');
        this.restarts.killHung(p, silentMs);
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

  // --- handoffs -------------------------------------------------------------------------------

  upgrade(req: UpgradeRequest, onEvent?: (e: HandoffEvent) => void): Promise<HandoffRecord> {
    const inflight = this.handoffs.current;
    if (inflight) return Promise.reject(new ProtocolError('handoff_in_progress', `handoff ${inflight.idStr} is in phase ${inflight.phase}`));
    const incumbent = this.incumbent;
    if (this.state !== 'serving' || !incumbent?.alive || !incumbent.acked) {
      return Promise.reject(new ProtocolError('incumbent_failed', `no incumbent is serving (supervisor is ${this.state})`));
    }
    if (req.command === undefined) {
      try {
        this.opts = reloadOptions(this.opts, this.log);
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
    return this.handoffs.launch({ incumbent, command, args, req, onEvent });
  }

  /** A handoff ended: the successor serves if it committed; with no live incumbent, a cold start at once. */
  private handoffEnded(h: Handoff, record: HandoffRecord): void {
    if (record.outcome === 'committed') {
      this.incumbent = h.successor;
      this.restarts.resetBackoff();
      if (h.successor.alive) this.serving.record(h.successor, this.opts);
    }
    const inc = this.incumbent;
    if (this.state === 'stopping') return;
    if (inc?.alive) {
      this.state = 'serving';
      return;
    }
    this.incumbent = null;
    this.restarts.lostInHandoff(inc);
  }

  abort(reason: string): boolean {
    return this.handoffs.abort(reason);
  }

  // --- what S shows ---------------------------------------------------------------------------

  private incumbentInfo(): IncumbentInfo | null {
    const inc = this.incumbent;
    if (!inc?.acked) return null;
    return {
      pid: inc.pid,
      build_id: inc.buildId ?? '',
      command: inc.command,
      started_at: inc.startedAt.toISOString(),
      uptime_ms: Date.now() - inc.startedAt.getTime(),
    };
  }

  status(): SupervisorStatus {
    return {
      pid: process.pid,
      state: this.state,
      incumbent: this.incumbentInfo(),
      listeners: this.held.map((l) => ({ name: l.name, address: l.address })),
      inflight: this.handoffs.inflight(),
      last: this.handoffs.last,
      incumbent_restarts: this.restarts.count,
      last_failure: this.restarts.lastFailure,
      recovered: this.handoffs.recovered,
    };
  }

  history(limit?: number): HistoryEntry[] {
    return this.stateDir.history(limit);
  }

  metrics(): SupervisorMetrics {
    const h = this.handoffs;
    return { handoffs: h.outcomes(), phaseHistograms: h.phaseHistograms(), incumbentRestarts: this.restarts.count, incumbentFailures: this.restarts.failuresByKind(), phase: h.phase() };
  }
}

export { ExecNotAllowedError, StartLimitError };
