import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DEFAULT_OPTIONS } from '../../src/supervisor/types.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const UNITS = fileURLToPath(new URL('../../systemd/', import.meta.url));
const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0;
const skip = hasAnalyze ? false : 'systemd-analyze is not installed (.ci/run installs systemd)';
/** systemd's version (`systemd 252 (252.38-1~deb12u1)`); Type=notify-reload came in 253. */
const systemdVersion = hasAnalyze ? Number(/^systemd ([0-9]+)/.exec(spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? NaN) : NaN;
const DROP_IN = 'handoff@.service.d/notify-reload.conf';

/**
 * The templates copied into a temp dir, where `handoff@test.*` instantiates them (no PID 1 needed);
 * with `dropIn`, the notify-reload drop-in too (verify reads `<unit>.d/` next to the unit).
 */
function unitDir(t: TapTest, edit?: (name: string, text: string) => string, dropIn = false): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-units-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const names = ['handoff@.service', 'handoff@.socket', ...(dropIn ? [DROP_IN] : [])];
  for (const name of names) {
    const text = fs.readFileSync(path.join(UNITS, name), 'utf8');
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), edit ? edit(name, text) : text);
  }
  return dir;
}

function verify(dir: string): { status: number | null; output: string } {
  const r = spawnSync(
    'systemd-analyze',
    ['verify', '--man=no', '--generators=no', path.join(dir, 'handoff@test.service'), path.join(dir, 'handoff@test.socket')],
    { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' } },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** `Key=value` assignments of a unit file, in order (comments and sections dropped). */
function assignments(file: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const raw of fs.readFileSync(path.join(UNITS, file), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    out.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return out;
}

function get(a: Array<[string, string]>, key: string): string | undefined {
  return a.filter(([k]) => k === key).at(-1)?.[1];
}

function seconds(v: string | undefined): number {
  const m = /^([0-9]+)(s|min)?$/.exec(v ?? '');
  if (!m?.[1]) return NaN;
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

t.test('systemd-analyze verify passes on the units, without a single warning', { skip }, async (t) => {
  const r = verify(unitDir(t));
  t.equal(r.status, 0, 'exit status 0');
  t.equal(r.output, '', 'no warnings');
});

t.test('the verify check catches a bad unit (control)', { skip }, async (t) => {
  const bad = verify(unitDir(t, (name, text) => (name.endsWith('.service') ? text.replace('[Service]', '[Service]\nTimeoutReloadSec=5') : text)));
  t.match(bad.output, /Unknown key 'TimeoutReloadSec'/, 'systemd 252 has no TimeoutReloadSec=; a warning is output, so the test above would fail');
  const missing = verify(unitDir(t, (_name, text) => text.replace('ExecStart=/usr/bin/env ', 'ExecStart=/nonexistent/env ')));
  t.not(missing.status, 0, 'a missing ExecStart binary fails verify');
});

t.test('the service unit keeps the contract with the supervisor', async (t) => {
  const s = assignments('handoff@.service');
  t.equal(get(s, 'Type'), 'notify');
  t.equal(get(s, 'NotifyAccess'), 'main', 'only S notifies (it sends from its own pid)');
  t.equal(get(s, 'KillMode'), 'mixed', 'SIGTERM to S alone, which drains its children; SIGKILL for what is left');
  t.equal(get(s, 'Restart'), 'on-failure');
  t.equal(get(s, 'RuntimeDirectory'), 'handoff-%i');
  t.equal(get(s, 'StateDirectory'), 'handoff-%i');
  t.equal(get(s, 'ExecStart'), '/usr/bin/env handoff run --config /etc/handoff/%i.json');
  t.equal(get(s, 'ExecReload'), '/usr/bin/env handoff upgrade --admin-socket %t/handoff-%i/handoff.sock', 'the admin socket in RuntimeDirectory= ($RUNTIME_DIRECTORY/handoff.sock)');
  const drain = DEFAULT_OPTIONS.drainGraceMs / 1000;
  t.ok(seconds(get(s, 'TimeoutStopSec')) > drain + 1 + DEFAULT_OPTIONS.killAfterMs / 1000, `TimeoutStopSec above the drain grace (${drain} s) and S's own kill`);
  t.ok(seconds(get(s, 'TimeoutStartSec')) > DEFAULT_OPTIONS.deadlineMs / 1000, 'a reload (timed by TimeoutStartSec in systemd 252) outlasts the handoff deadline');
  t.equal(get(s, 'WatchdogSec'), '30s', 'S pings every 15 s; a stuck S is restarted within 30 s');
  t.equal(get(s, 'NoNewPrivileges'), 'yes');
  t.equal(get(s, 'ProtectSystem'), 'strict');
  t.equal(get(s, 'MemoryDenyWriteExecute'), undefined, "not set: V8's JIT needs writable executable memory");
  t.match(get(s, 'RestrictAddressFamilies'), /AF_UNIX/, 'unix sockets stay allowed (control channel, admin API, notify)');

  const k = assignments('handoff@.socket');
  t.equal(get(k, 'FileDescriptorName'), 'http', 'LISTEN_FDNAMES names it');
  t.equal(get(k, 'Accept'), 'no');
  t.equal(get(k, 'Service'), 'handoff@%i.service');
  t.ok(get(k, 'ListenStream'));
});

t.test('offline security review stays at or below MEDIUM 6.0', { skip }, async (t) => {
  const dir = unitDir(t);
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=60', '--no-pager', path.join(dir, 'handoff@test.service')], {
    encoding: 'utf8',
  });
  const level = /Overall exposure level for handoff@test\.service: ([0-9.]+)/.exec(`${r.stdout}${r.stderr}`)?.[1];
  t.equal(r.status, 0, `exposure ${String(level)} <= 6.0`);
});

t.test('the notify-reload drop-in: verify reads it, and only systemd 253+ knows its type', { skip }, async (t) => {
  const r = verify(unitDir(t, undefined, true));
  t.equal(r.status, 0, 'exit status 0');
  if (systemdVersion >= 253) {
    t.equal(r.output, '', `systemd ${systemdVersion}: no warnings`);
  } else {
    // 252 ignores the line (the unit would stay Type=notify, with no ExecReload= left): the
    // README says to install the drop-in on 253 or later only. The warning shows it was read.
    t.match(r.output, /notify-reload\.conf:[0-9]+: Failed to parse service type, ignoring: notify-reload$/, `systemd ${systemdVersion}: the type is unknown`);
    t.equal(r.output.split('\n').length, 1, 'and that is the only warning');
  }
  const bad = verify(unitDir(t, (name, text) => (name === DROP_IN ? text.replace('[Service]', '[Service]\nBogusKey=1') : text), true));
  t.match(bad.output, /notify-reload\.conf:[0-9]+: Unknown key 'BogusKey'/, 'control: a bad key in the drop-in is reported, so the drop-in is what was checked');
});

t.test('the notify-reload drop-in keeps the contract with the supervisor', async (t) => {
  const d = assignments(DROP_IN);
  t.equal(get(d, 'Type'), 'notify-reload', 'reload = SIGHUP to S, answered with RELOADING=1 then READY=1');
  t.same(d.filter(([k]) => k === 'ExecReload'), [['ExecReload', '']], 'ExecReload= emptied: no handoff upgrade racing the SIGHUP handoff');
  t.ok(['SIGHUP', undefined].includes(get(d, 'ReloadSignal')), 'SIGHUP, the one signal S starts a handoff on');
});
