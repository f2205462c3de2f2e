/**
 * S's state directory: an append-only history (`history.jsonl`, one record a line, fsynced: handoffs
 * and incumbent restarts), the journal of the in-flight handoff (`inflight.json`), the command that
 * serves (`serving.json`, so that a committed upgrade survives S's restarts), both replaced by
 * write-temp, fsync, rename, and a pid file that keeps a second supervisor out.
 */

import fs from 'node:fs';
import path from 'node:path';
import { ProtocolError } from '../protocol/errors.js';
import type { HandoffPhase, HandoffRecord, HistoryEntry, ServingCommand } from './types.js';

export interface Journal {
  handoff_id: string;
  phase: HandoffPhase;
  incumbent_pid: number | null;
  successor_pid: number | null;
  started_at: string;
  command: string[];
  supervisor_pid: number;
}

export class StateDirBusyError extends Error {
  override name = 'StateDirBusyError';
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class StateDir {
  readonly historyPath: string;
  readonly journalPath: string;
  readonly pidPath: string;
  readonly servingPath: string;
  private claimed = false;

  constructor(readonly dir: string) {
    this.historyPath = path.join(dir, 'history.jsonl');
    this.journalPath = path.join(dir, 'inflight.json');
    this.pidPath = path.join(dir, 'supervisor.pid');
    this.servingPath = path.join(dir, 'serving.json');
  }

  /** Takes the directory for this process; refuses while another live supervisor holds it. */
  claim(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(this.pidPath, 'wx', 0o600);
        fs.writeSync(fd, `${process.pid}\n`);
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        this.claimed = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const other = Number.parseInt(fs.readFileSync(this.pidPath, 'utf8'), 10);
      if (Number.isInteger(other) && other > 0 && other !== process.pid && pidAlive(other)) {
        throw new StateDirBusyError(`state dir ${this.dir} is in use by supervisor pid ${other}`);
      }
      // A dead supervisor's pid file: take it over.
      fs.rmSync(this.pidPath, { force: true });
    }
    throw new StateDirBusyError(`could not claim state dir ${this.dir}`);
  }

  release(): void {
    if (!this.claimed) return;
    this.claimed = false;
    try {
      const pid = Number.parseInt(fs.readFileSync(this.pidPath, 'utf8'), 10);
      if (pid === process.pid) fs.rmSync(this.pidPath, { force: true });
    } catch {
      // Nothing to release.
    }
  }

  append(record: HistoryEntry): void {
    const fd = fs.openSync(this.historyPath, 'a', 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(record)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The newest `limit` records, oldest first; a torn last line (crash mid-append) is skipped. */
  history(limit = Infinity): HistoryEntry[] {
    let text: string;
    try {
      text = fs.readFileSync(this.historyPath, 'utf8');
    } catch {
      return [];
    }
    const out: HistoryEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as HistoryEntry);
      } catch {
        // A torn line from a crash mid-append; the rest of the history stands.
      }
    }
    return limit >= out.length ? out : out.slice(out.length - limit);
  }

  writeJournal(j: Journal): void {
    this.replace(this.journalPath, j);
  }

  readJournal(): Journal | undefined {
    return readJson<Journal>(this.journalPath);
  }

  writeServing(c: ServingCommand): void {
    this.replace(this.servingPath, c);
  }

  /** The recorded serving command; undefined when there is none or it is unreadable. */
  readServing(): ServingCommand | undefined {
    const v = readJson<Partial<ServingCommand>>(this.servingPath);
    const isCommand = (x: unknown): x is string[] => Array.isArray(x) && x.length > 0 && x.every((a) => typeof a === 'string');
    if (!v || !isCommand(v.command) || !isCommand(v.configured)) return undefined;
    return { command: v.command, configured: v.configured, build_id: typeof v.build_id === 'string' ? v.build_id : '', at: typeof v.at === 'string' ? v.at : '' };
  }

  /** Write-temp, fsync, rename, fsync the directory: a reader sees the old file or the new one. */
  private replace(file: string, value: unknown): void {
    const tmp = `${file}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(value));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    fsyncDir(this.dir);
  }

  clearJournal(): void {
    fs.rmSync(this.journalPath, { force: true });
  }

  /**
   * A journal left by a supervisor that ended mid-handoff becomes an `interrupted` record in the
   * history (and is returned); the journal is then cleared.
   */
  recoverInterrupted(): HandoffRecord | undefined {
    const j = this.readJournal();
    if (!j) return undefined;
    const now = new Date().toISOString();
    const reason = new ProtocolError('supervisor_stopping', `a previous supervisor (pid ${j.supervisor_pid}) ended during phase ${j.phase}`);
    const rec: HandoffRecord = {
      handoff_id: j.handoff_id,
      outcome: 'interrupted',
      reason: reason.toReason(),
      reason_kind: reason.kind,
      started_at: j.started_at,
      ended_at: now,
      incumbent_pid: j.incumbent_pid,
      successor_pid: j.successor_pid,
      command: j.command,
      phases: [],
      total_ms: Date.parse(now) - Date.parse(j.started_at),
      rolled_forward: false,
      revisions_checked: false,
    };
    this.append(rec);
    this.clearJournal();
    return rec;
  }
}
