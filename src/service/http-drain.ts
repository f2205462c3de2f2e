/**
 * Draining a node:http server without losing a request from keep-alive clients.
 *
 * The trap: closing idle keep-alive connections the moment draining starts (what
 * http.Server.close() does since Node 19, and what process managers' reloads amount to) races
 * the clients. A client that already sent its next request on an "idle" connection sees a reset,
 * so every reload loses about one request per keep-alive client.
 *
 * Instead, once draining:
 *  - every response carries `Connection: close` and its connection closes right after it (the
 *    client knows not to reuse it, so nothing races);
 *  - a connection that stays idle for `lingerMs` is closed then (a busy client gets a
 *    `Connection: close` response first; a quiet one is not about to send), but never while bytes
 *    of a next request have arrived, and not on a timer that fired late (the process was not
 *    running: a request may wait unread in the socket; the decision is also taken after the poll
 *    phase has read it);
 *  - whatever is left when the grace ends is destroyed and counted.
 * It is reversible: undrain() returns to plain keep-alive.
 *
 * Accept is not this class's business: the library stops and reopens it around the drain.
 */

import type http from 'node:http';
import type net from 'node:net';
import { TIMER_MAX_MS } from '../shared/constants.js';

export interface HttpDrainOptions {
  /** How long a connection may stay idle while draining before it is closed (default 250 ms). */
  lingerMs?: number;
}

/** A linger timer this late means the process was not running: it re-arms instead of closing. */
const LINGER_STALL_MS = 50;
const MAX_LINGER_STALLS = 4;

interface ConnState {
  /** Requests received on this connection whose response has not closed yet. */
  active: number;
  /** socket.bytesRead when the connection last became idle, to notice a request on its way. */
  idleBytes: number;
  linger: NodeJS.Timeout | undefined;
}

export class HttpDrain {
  readonly lingerMs: number;
  private readonly conns = new Map<net.Socket, ConnState>();
  private drainingFlag = false;
  private waiter: (() => void) | undefined;

  constructor(
    readonly server: http.Server,
    opts: HttpDrainOptions = {},
  ) {
    this.lingerMs = opts.lingerMs ?? 250;
    // A TLS server hands requests over the TLS socket, announced by 'secureConnection'.
    const connectionEvent = 'setSNIContext' in server ? 'secureConnection' : 'connection';
    server.on(connectionEvent, (socket: net.Socket) => this.track(socket));
    // First in line, so that a handler that answers synchronously already sees the header.
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res));
  }

  get draining(): boolean {
    return this.drainingFlag;
  }

  /** Open connections (idle or busy). */
  get connections(): number {
    return this.conns.size;
  }

  /**
   * Drains for at most `graceMs`: resolves with the number of connections still open when the
   * grace ended (they are destroyed), 0 when all closed by themselves. undrain() meanwhile
   * resolves it at once with the connections still open (nothing is destroyed then).
   */
  drain(graceMs: number): Promise<number> {
    // A drain still running is superseded by this one (its promise resolves now).
    this.undrain();
    this.drainingFlag = true;
    for (const [socket, st] of this.conns) {
      if (st.active === 0) this.startLinger(socket, st);
      else this.closeAfterResponses(socket);
    }
    return new Promise<number>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (!this.drainingFlag) {
          resolve(this.conns.size);
          return;
        }
        const left = this.conns.size;
        for (const socket of this.conns.keys()) socket.destroy();
        resolve(left);
      };
      const timer = setTimeout(done, Math.min(Math.max(0, graceMs), TIMER_MAX_MS));
      timer.unref();
      this.waiter = done;
      this.checkDone();
    });
  }

  /** Back to normal keep-alive. Responses already sent with `Connection: close` keep it. */
  undrain(): void {
    if (!this.drainingFlag) return;
    this.drainingFlag = false;
    for (const st of this.conns.values()) {
      clearTimeout(st.linger);
      st.linger = undefined;
    }
    this.waiter?.();
  }

  private track(socket: net.Socket): void {
    const st: ConnState = { active: 0, idleBytes: socket.bytesRead, linger: undefined };
    this.conns.set(socket, st);
    socket.once('close', () => {
      clearTimeout(st.linger);
      this.conns.delete(socket);
      this.checkDone();
    });
    if (this.drainingFlag) this.startLinger(socket, st);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    const st = this.conns.get(socket);
    if (!st) return;
    st.active++;
    clearTimeout(st.linger);
    st.linger = undefined;
    if (this.drainingFlag) this.markClose(res);
    res.once('close', () => {
      st.active--;
      if (st.active === 0) {
        st.idleBytes = socket.bytesRead;
        if (this.drainingFlag && !socket.destroyed) this.startLinger(socket, st);
      }
    });
  }

  /** Marks an in-flight response so that its connection closes after it. */
  private markClose(res: http.ServerResponse): void {
    if (!res.headersSent) {
      res.setHeader('Connection', 'close');
      res.shouldKeepAlive = false;
    }
  }

  private closeAfterResponses(socket: net.Socket): void {
    // The response in flight (if its headers are still unsent) will say close; for the others the
    // linger that starts when the connection becomes idle takes over.
    const res = (socket as net.Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (res) this.markClose(res);
  }

  private startLinger(socket: net.Socket, st: ConnState, stalls = 0): void {
    clearTimeout(st.linger);
    st.idleBytes = socket.bytesRead;
    const armedAt = performance.now();
    st.linger = setTimeout(() => {
      st.linger = undefined;
      // Time this process did not run (GC, a busy machine) is nobody's idleness: the client may
      // have sent its next request meanwhile, still unread. Re-arm, a bounded number of times.
      const late = performance.now() - armedAt - this.lingerMs;
      if (late > LINGER_STALL_MS && stalls < MAX_LINGER_STALLS) {
        this.startLinger(socket, st, stalls + 1);
        return;
      }
      // Timers run before the poll phase: decide after it has read what waited in the socket.
      setImmediate(() => this.closeIfIdle(socket, st));
    }, this.lingerMs);
    st.linger.unref();
  }

  private closeIfIdle(socket: net.Socket, st: ConnState): void {
    if (!this.drainingFlag || st.active > 0 || socket.destroyed || st.linger !== undefined) return;
    if (socket.bytesRead !== st.idleBytes) {
      // A request is arriving: it will be answered with Connection: close.
      this.startLinger(socket, st);
      return;
    }
    socket.destroy();
  }

  private checkDone(): void {
    if (this.waiter && this.conns.size === 0) this.waiter();
  }
}

/**
 * The fallback drain for a plain net.Server: waits until its connections close by themselves,
 * destroys whatever is left when the grace ends and counts it.
 */
export class ConnectionTracker {
  private readonly conns = new Set<net.Socket>();
  private waiter: (() => void) | undefined;

  constructor(readonly server: net.Server) {
    server.on('connection', (socket: net.Socket) => {
      this.conns.add(socket);
      socket.once('close', () => {
        this.conns.delete(socket);
        if (this.conns.size === 0) this.waiter?.();
      });
    });
  }

  get connections(): number {
    return this.conns.size;
  }

  drain(graceMs: number): Promise<number> {
    this.undrain();
    return new Promise<number>((resolve) => {
      const done = (destroy: boolean): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        const left = this.conns.size;
        if (destroy) for (const s of this.conns) s.destroy();
        resolve(left);
      };
      const timer = setTimeout(() => done(true), Math.min(Math.max(0, graceMs), TIMER_MAX_MS));
      timer.unref();
      this.waiter = () => done(false);
      if (this.conns.size === 0) done(false);
    });
  }

  undrain(): void {
    this.waiter?.();
  }
}
