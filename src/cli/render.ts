/** What the client commands print: status, history, and the live progress of a handoff. */

import { isRestartRecord, type HandoffEvent, type HandoffPhase, type HandoffRecord, type HistoryEntry, type IncumbentInfo, type SupervisorStatus } from '../supervisor/types.js';
import { formatDuration } from './duration.js';

export interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const shortId = (id: string): string => id.slice(0, 8);

function phasesLine(phases: ReadonlyArray<{ phase: HandoffPhase; ms: number }>): string {
  return phases.map((p) => `${p.phase} ${formatDuration(p.ms)}`).join(', ');
}

function ago(iso: string, now: number): string {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? `${formatDuration(Math.max(0, now - t))} ago` : iso;
}

/** What serves now, from status (the record of a handoff that did not commit names only the rejected build). */
export type ServingNow = Pick<IncumbentInfo, 'pid' | 'build_id'> | null;

/** Which build serves after a handoff that did not commit, when the caller knows what serves now. */
function stillServing(r: HandoffRecord, now: ServingNow | undefined): string {
  if (now === undefined) return '';
  if (now === null) return '; nothing serves now';
  const build = now.build_id === '' ? 'the incumbent' : `build ${now.build_id}`;
  return now.pid === r.incumbent_pid ? `; ${build} still serves (pid ${now.pid})` : `; ${build} serves (pid ${now.pid}, a fresh start)`;
}

/**
 * One line for a finished handoff: `committed in 1.52 s (hello 120 ms, …), build v2 serves` or
 * `aborted after …: reason (…); build v1 still serves (pid 42)` (the latter when `now` is given).
 */
export function outcomeLine(r: HandoffRecord, now?: ServingNow): string {
  const phases = r.phases.length > 0 ? ` (${phasesLine(r.phases)})` : '';
  const build = r.build_id !== undefined && r.build_id !== '' ? `, build ${r.build_id} serves` : '';
  if (r.outcome === 'committed') return `committed in ${formatDuration(r.total_ms)}${phases}${build}${r.rolled_forward ? ' [rolled forward: the incumbent died mid-handoff]' : ''}${r.reason ? ` (${r.reason})` : ''}`;
  return `${r.outcome} after ${formatDuration(r.total_ms)}: ${r.reason ?? 'no reason recorded'}${phases}${stillServing(r, now)}`;
}

export function renderStatus(s: SupervisorStatus, now = Date.now()): string {
  const rows: Array<[string, string]> = [];
  rows.push(['supervisor', `pid ${s.pid}, ${s.state}`]);
  const inc = s.incumbent;
  rows.push(['incumbent', inc ? `pid ${inc.pid}, build ${inc.build_id === '' ? '(none)' : inc.build_id}, up ${formatDuration(inc.uptime_ms)}` : 'none serving']);
  if (inc) rows.push(['command', inc.command.join(' ')]);
  if (s.listeners.length === 0) rows.push(['listeners', 'none']);
  s.listeners.forEach((l, i) => rows.push([i === 0 ? 'listeners' : '', `${l.name}  ${l.address}`]));
  const f = s.inflight;
  rows.push(['handoff', f ? `${shortId(f.handoff_id)} in phase ${f.phase} for ${formatDuration(f.elapsed_ms)}${f.successor_pid !== null ? ` (successor pid ${f.successor_pid})` : ''}` : 'none in flight']);
  rows.push(['last', s.last ? `${shortId(s.last.handoff_id)} ${outcomeLine(s.last, s.last.outcome === 'committed' ? undefined : s.incumbent)}, ${ago(s.last.ended_at, now)}` : 'no handoff yet']);
  rows.push(['restarts', String(s.incumbent_restarts)]);
  const lf = s.last_failure;
  if (lf) {
    rows.push(['last failure', `${lf.reason} (pid ${lf.pid} ${lf.exit}, ${ago(lf.at, now)}${lf.consecutive > 1 ? `, ${lf.consecutive} in a row` : ''})`]);
    lf.stderr_tail.forEach((l, i) => rows.push([i === 0 ? 'its stderr' : '', l]));
  }
  if (s.recovered) rows.push(['recovered', `${shortId(s.recovered.handoff_id)} ${s.recovered.outcome}: ${s.recovered.reason ?? ''}`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

/**
 * Handoffs and incumbent restarts, oldest first; BUILD is the build that served afterwards: the
 * successor's after a commit, the one an earlier commit in the list put in place otherwise (`-` when
 * the list does not show it; a restart keeps the serving build).
 */
export function renderHistory(entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return 'no handoffs yet\n';
  const head = ['ENDED', 'ID', 'OUTCOME', 'TOTAL', 'PHASES', 'BUILD', 'REASON'];
  const when = (iso: string): string => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  let serving = '-';
  const servingAfter = (r: HandoffRecord): string => {
    if (r.outcome === 'committed') serving = r.build_id ? r.build_id : '-';
    return serving;
  };
  const rows = entries.map((r) =>
    isRestartRecord(r)
      ? [when(r.at), '-', 'restart', formatDuration(r.delay_ms), `pid ${r.pid} ${r.exit}`, '-', r.reason]
      : [
          when(r.ended_at),
          shortId(r.handoff_id),
          r.outcome + (r.rolled_forward ? '*' : ''),
          formatDuration(r.total_ms),
          r.phases.map((p) => `${p.phase}=${formatDuration(p.ms).replace(' ', '')}`).join(' ') || '-',
          servingAfter(r),
          r.reason ?? '',
        ],
  );
  const records = entries.filter((r): r is HandoffRecord => !isRestartRecord(r));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const foot = records.some((r) => r.rolled_forward) ? '* rolled forward: the incumbent died mid-handoff\n' : '';
  return [line(head), ...rows.map(line)].join('\n') + '\n' + foot;
}

// --- live progress ----------------------------------------------------------------------------

export type ProgressMode = 'tty' | 'plain' | 'json';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR_LINE = '\r\x1b[2K';

/**
 * Shows a handoff as its events arrive.
 * - `tty`: one line per finished phase with its duration, the current phase redrawn in place with
 *   a spinner, its elapsed time and a bar fed by seal progress events.
 * - `plain`: one line per event (progress at most every 10%), for logs and pipes.
 * - `json`: each event and the final `{"record": …}` as NDJSON, as the supervisor sent them.
 */
export class ProgressRenderer {
  private current: { phase: HandoffPhase; since: number; progress?: { done: number; total: number } } | undefined;
  private shownDecile = -1;
  private ticker: NodeJS.Timeout | undefined;
  private frame = 0;
  private lastElapsed = 0;
  private lastEventAt = 0;
  private readonly color: boolean;

  constructor(
    private readonly out: Out,
    readonly mode: ProgressMode,
    opts: { color?: boolean; tickMs?: number } = {},
  ) {
    this.color = opts.color ?? false;
    if (mode === 'tty' && (opts.tickMs ?? 100) > 0) {
      this.ticker = setInterval(() => this.redraw(), opts.tickMs ?? 100);
      this.ticker.unref();
    }
  }

  private paint(code: string, s: string): string {
    return this.color ? `\x1b[${code}m${s}\x1b[0m` : s;
  }

  /** Elapsed ms of the handoff now, extrapolated from the last event. */
  private elapsedNow(): number {
    return this.lastElapsed + (this.lastEventAt === 0 ? 0 : Date.now() - this.lastEventAt);
  }

  private liveLine(): string {
    const c = this.current;
    if (!c) return '';
    const spin = SPINNER[this.frame % SPINNER.length] ?? '*';
    let s = `  ${this.paint('36', spin)} ${c.phase.padEnd(8)} ${formatDuration(Math.max(0, this.elapsedNow() - c.since)).padStart(8)}`;
    if (c.progress && c.progress.total > 0) {
      const width = 24;
      const filled = Math.min(width, Math.round((c.progress.done / c.progress.total) * width));
      s += `  [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${c.progress.done}/${c.progress.total} shards`;
    }
    return s;
  }

  private redraw(): void {
    if (this.mode !== 'tty' || !this.current) return;
    this.frame++;
    this.out.write(CLEAR_LINE + this.liveLine());
  }

  /** Closes the current phase's line with its mark and duration. */
  private closePhase(ms: number, ok: boolean): void {
    const c = this.current;
    if (!c) return;
    const mark = ok ? this.paint('32', '✓') : this.paint('31', '✗');
    this.out.write(`${CLEAR_LINE}  ${mark} ${c.phase.padEnd(8)} ${formatDuration(ms).padStart(8)}${c.progress ? `  ${c.progress.done}/${c.progress.total} shards` : ''}\n`);
    this.current = undefined;
  }

  event(e: HandoffEvent): void {
    this.lastElapsed = e.elapsed_ms;
    this.lastEventAt = Date.now();
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify(e)}\n`);
      return;
    }
    if (this.mode === 'plain') {
      this.plain(e);
      return;
    }
    if (e.phase === 'spawn') {
      this.out.write(`handoff ${shortId(e.handoff_id)}: ${e.detail ?? 'successor spawned'}\n`);
      return;
    }
    if (e.progress) {
      if (this.current) this.current.progress = { done: e.progress.shards_sealed, total: e.progress.shards_total };
      this.redraw();
      return;
    }
    if (e.phase === 'done') {
      if (this.current) this.closePhase(e.elapsed_ms - this.current.since, e.outcome === 'committed');
      return;
    }
    if (this.current) this.closePhase(e.previous?.ms ?? e.elapsed_ms - this.current.since, e.phase !== 'rollback');
    this.current = { phase: e.phase, since: e.elapsed_ms };
    this.redraw();
  }

  private plain(e: HandoffEvent): void {
    const id = shortId(e.handoff_id);
    if (e.phase === 'spawn') {
      this.out.write(`handoff ${id} started: ${e.detail ?? 'successor spawned'}\n`);
      return;
    }
    if (e.progress) {
      const { shards_sealed: done, shards_total: total } = e.progress;
      const decile = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (decile !== this.shownDecile) {
        this.shownDecile = decile;
        this.out.write(`handoff ${id}: seal progress ${done}/${total} shards (revision ${e.progress.last_revision})\n`);
      }
      return;
    }
    if (e.phase === 'done') return;
    const prev = e.previous && e.previous.phase !== 'spawn' ? ` (${e.previous.phase} took ${formatDuration(e.previous.ms)})` : '';
    this.out.write(`handoff ${id}: phase ${e.phase}${prev}\n`);
  }

  /** The final record: the outcome line (or the raw record in json mode); `now` is what serves after a handoff that did not commit. */
  record(r: HandoffRecord, now?: ServingNow): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify({ record: r })}\n`);
      return;
    }
    if (this.mode === 'tty') {
      if (this.current) this.closePhase(r.phases.at(-1)?.ms ?? 0, r.outcome === 'committed');
      const mark = r.outcome === 'committed' ? this.paint('32', '✓') : this.paint('31', '✗');
      this.out.write(`${mark} handoff ${shortId(r.handoff_id)} ${outcomeLine(r, now)}\n`);
      return;
    }
    this.out.write(`handoff ${shortId(r.handoff_id)} ${outcomeLine(r, now)}\n`);
  }

  /** Stops redrawing; ends a half-drawn line. */
  stop(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
    if (this.mode === 'tty' && this.current) {
      this.out.write(`${CLEAR_LINE}${this.liveLine()}\n`);
      this.current = undefined;
    }
  }
}
