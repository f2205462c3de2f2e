/**
 * Accept control: which server accepts on which inherited listener, opening and closing accept,
 * and the drain that follows a close. Each opening takes a fresh duplicate from the listener pool,
 * so the inherited masters stay open for a resume, a stop, or whichever process serves after this one.
 */

import type { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { ContractError, type InheritedListener, type ServiceContract } from '../shared/contract.js';
import { ListenerPool, adoptByNumber, isTcpHandle } from './fd-dup.js';
import { ConnectionTracker, HttpDrain } from './http-drain.js';
import type { Logger } from './logger.js';
import type { Acceptor, ServiceEvents, ServiceOptions } from './types.js';
import { firstLine } from './wire.js';

interface ServerEntry {
  name: string;
  target: net.Server | Acceptor;
  listening: boolean;
  /** The pool descriptor accepted on, to report when closed. */
  fd: number | undefined;
  drainer: HttpDrain | ConnectionTracker | undefined;
}

function isAcceptor(t: net.Server | Acceptor): t is Acceptor {
  return !(t instanceof net.Server) && typeof t.start === 'function' && typeof t.stop === 'function';
}

export class AcceptControl {
  readonly pool: ListenerPool;
  private readonly entries: ServerEntry[];

  /** Matches `opts.servers` to the listeners; throws a ContractError when one has nowhere to listen. */
  constructor(
    private readonly opts: ServiceOptions,
    contract: ServiceContract,
    env: NodeJS.ProcessEnv,
    private readonly logger: Logger,
    private readonly events: EventEmitter<ServiceEvents>,
    /** Once the process is on its way out (stopping, rolling back, exiting), no accept is (re)opened. */
    private readonly exiting: () => boolean,
  ) {
    const names = Object.keys(opts.servers);
    if (names.length === 0) throw new TypeError('servers: name at least one server');

    let listeners: InheritedListener[] = contract.listeners;
    if (listeners.length > 0 && !opts.contract?.listeners && !env.LISTEN_FDNAMES && listeners.length === names.length) {
      // Unnamed fds (plain systemd socket activation): take them in the order the servers are given.
      listeners = listeners.map((l, i) => ({ name: names[i]!, fd: l.fd }));
    }
    this.pool = new ListenerPool(listeners, logger);
    for (const name of names) {
      if (contract.supervised || listeners.length > 0) {
        if (!this.pool.has(name)) throw new ContractError(`no inherited listener named ${JSON.stringify(name)} (LISTEN_FDNAMES has ${listeners.map((l) => l.name).join(', ') || 'none'})`);
      } else if (!opts.standaloneListen?.[name]) {
        throw new ContractError(`no supervisor, no LISTEN_FDS and no standaloneListen for ${JSON.stringify(name)}`);
      }
    }
    for (const l of listeners) if (!names.includes(l.name)) logger.warn({ listener: l.name }, 'an inherited listener has no server; it is not served');
    this.entries = names.map((name) => {
      const target = opts.servers[name]!;
      let drainer: HttpDrain | ConnectionTracker | undefined;
      if (!opts.drain && !isAcceptor(target)) {
        drainer = target instanceof http.Server || target instanceof https.Server ? new HttpDrain(target, { lingerMs: opts.lingerMs }) : new ConnectionTracker(target);
      }
      return { name, target, listening: false, fd: undefined, drainer };
    });
  }

  /** Accept is open on at least one server: clients may be connected, so leaving means draining. */
  get open(): boolean {
    return this.entries.some((e) => e.listening);
  }

  /** The served listener names, as Ready reports them. */
  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  async start(): Promise<void> {
    for (const e of this.entries) {
      if (e.listening) continue;
      if (this.exiting()) return;
      if (!this.pool.has(e.name)) {
        const where = this.opts.standaloneListen?.[e.name];
        if (!where || isAcceptor(e.target)) throw new Error(`nowhere to listen for ${e.name}`);
        await listenOn(e.target, where);
      } else {
        const h = await this.pool.take(e.name);
        e.fd = h.fd;
        if (this.exiting()) return;
        if (isAcceptor(e.target)) await e.target.start(adoptByNumber(h));
        else await listenOn(e.target, isTcpHandle(h) ? h : { fd: adoptByNumber(h) });
      }
      e.listening = true;
      // Called off while the listen was under way. No connection was accepted yet (that takes a
      // later turn of the loop), so closing now resets nobody.
      if (this.exiting()) return this.stop();
    }
    this.logger.debug('accepting');
    this.events.emit('accepting');
  }

  async stop(): Promise<void> {
    for (const e of this.entries) {
      if (!e.listening) continue;
      e.listening = false;
      try {
        if (isAcceptor(e.target)) await e.target.stop();
        // net.Server's close, not http.Server's: that one also closes idle keep-alive connections at once.
        else if (e.target.listening) net.Server.prototype.close.call(e.target);
      } catch (err) {
        this.logger.warn({ listener: e.name, err: firstLine(err) }, 'closing accept failed');
      }
      if (e.fd !== undefined) this.pool.closed(e.name, e.fd);
      e.fd = undefined;
    }
    this.events.emit('accept-closed');
  }

  /** Accept is closed: wait up to `graceMs` for connections to finish. Resolves with how many are left. */
  async drain(graceMs: number): Promise<number> {
    try {
      if (this.opts.drain) return (await this.opts.drain(graceMs)) ?? 0;
      const counts = await Promise.all(this.entries.map((e) => e.drainer?.drain(graceMs) ?? Promise.resolve(0)));
      return counts.reduce((a, b) => a + b, 0);
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'drain failed');
      return 0;
    }
  }

  undrain(): void {
    try {
      if (this.opts.drain) this.opts.undrain?.();
      else for (const e of this.entries) e.drainer?.undrain();
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'undrain failed');
    }
  }
}

function listenOn(server: net.Server, where: object): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(where);
  });
}
