/** Durations, option precedence (flag > env > config > default), and the request `upgrade` builds. */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { upgradeBody, parseCount } from '../../src/cli/commands.js';
import { childEnvironment, resolveRunSettings } from '../../src/cli/config.js';
import { durationLabel, formatDuration, parseDuration } from '../../src/cli/duration.js';
import { CliError } from '../../src/cli/errors.js';
import { clientAdminSocket, defaultAdminSocket, defaultStateDir, firstDirectory } from '../../src/cli/paths.js';
import { DEFAULT_OPTIONS } from '../../src/supervisor/types.js';

t.test('durations parse with units or as bare milliseconds', async (t) => {
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('5s'), 5000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('.5s'), 500);
  t.equal(parseDuration('2m'), 120_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration('750'), 750);
  t.equal(parseDuration(' 10 s '), 10_000);
  t.equal(parseDuration(42), 42);
  t.equal(parseDuration('2147483647'), 2_147_483_647);
  for (const bad of ['', 's', '5x', '-5s', '5 seconds', '1e3', '0', '0ms', '0.0004s', '25d', '2147483648', 'NaN', '5s5']) {
    t.throws(() => parseDuration(bad), { name: 'DurationError' }, JSON.stringify(bad));
  }
  t.throws(() => parseDuration(Infinity), { name: 'DurationError' });
  t.throws(() => parseDuration(-1), { name: 'DurationError' });
});

t.test('durations print for people and for help', async (t) => {
  t.equal(formatDuration(0), '0 ms');
  t.equal(formatDuration(850), '850 ms');
  t.equal(formatDuration(1234), '1.23 s');
  t.equal(formatDuration(12_345), '12.3 s');
  t.equal(formatDuration(65_000), '1m 05s');
  t.equal(formatDuration(3 * 3_600_000 + 12 * 60_000), '3h 12m');
  t.equal(formatDuration(2 * 86_400_000 + 3_600_000), '2d 01h');
  t.equal(formatDuration(-1), '?');
  t.equal(durationLabel(25_000), '25s');
  t.equal(durationLabel(250), '250ms');
  t.equal(durationLabel(120_000), '2m');
  t.equal(durationLabel(3_600_000), '1h');
});

t.test('default paths follow systemd directories', async (t) => {
  t.equal(firstDirectory(undefined), undefined);
  t.equal(firstDirectory(''), undefined);
  t.equal(firstDirectory('/run/a:/run/b'), '/run/a');
  t.equal(defaultAdminSocket({}), './handoff.sock');
  t.equal(defaultAdminSocket({ RUNTIME_DIRECTORY: '/run/kv' }), '/run/kv/handoff.sock');
  t.equal(defaultStateDir({}), './.handoff');
  t.equal(defaultStateDir({ STATE_DIRECTORY: '/var/lib/kv:/var/lib/other' }), '/var/lib/kv');
  t.equal(clientAdminSocket('/x.sock', { HANDOFF_ADMIN_SOCKET: '/y.sock' }), '/x.sock');
  t.equal(clientAdminSocket(undefined, { HANDOFF_ADMIN_SOCKET: '/y.sock', RUNTIME_DIRECTORY: '/run/kv' }), '/y.sock');
  t.equal(clientAdminSocket(undefined, { HANDOFF_ADMIN_SOCKET: '', RUNTIME_DIRECTORY: '/run/kv' }), '/run/kv/handoff.sock');
});

t.test('run settings: flags win over env, env over config, config over defaults', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcfg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'handoff.json');
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      listen: ['http=tcp://127.0.0.1:1'],
      'drain-grace': '7s',
      deadline: 9000,
      'hello-timeout': '3s',
      'allow-exec': 'bin/x',
      lock: 'lockdir',
      command: [process.execPath, 'main.js'],
      verbose: true,
    }),
  );

  // Config alone (through HANDOFF_CONFIG), relative paths resolved against cwd.
  let s = resolveRunSettings({}, [], { HANDOFF_CONFIG: cfg }, dir);
  t.same(s.listen, ['http=tcp://127.0.0.1:1']);
  t.equal(s.drainGraceMs, 7000);
  t.equal(s.deadlineMs, 9000);
  t.equal(s.helloTimeoutMs, 3000);
  t.equal(s.heartbeatMs, DEFAULT_OPTIONS.heartbeatMs);
  t.same(s.allowExec, [path.join(dir, 'bin/x')]);
  t.equal(s.lockPath, path.join(dir, 'lockdir'));
  t.equal(s.command, process.execPath);
  t.same(s.args, ['main.js']);
  t.equal(s.verbose, true);
  t.equal(s.logLevel, 'debug', '--verbose means debug logs unless a level is given');
  t.equal(s.sources['drain-grace'], 'config');
  t.equal(s.sources['heartbeat'], 'default');

  // Env over config.
  const env = { HANDOFF_DRAIN_GRACE: '2s', HANDOFF_LISTEN: 'a=tcp://127.0.0.1:2  b=unix:/tmp/b.sock', HANDOFF_ALLOW_EXEC: '/bin/a:/bin/b', HANDOFF_VERBOSE: '0', HANDOFF_LOG_LEVEL: 'WARN' };
  s = resolveRunSettings({ config: cfg }, [], env, dir);
  t.equal(s.drainGraceMs, 2000);
  t.same(s.listen, ['a=tcp://127.0.0.1:2', 'b=unix:/tmp/b.sock']);
  t.same(s.allowExec, ['/bin/a', '/bin/b']);
  t.equal(s.verbose, false);
  t.equal(s.logLevel, 'warn');
  t.equal(s.sources['drain-grace'], 'env');

  // Flags over env; the command after -- over the config's.
  s = resolveRunSettings({ config: cfg, drainGrace: '250ms', listen: ['c=tcp://127.0.0.1:3'], verbose: true, logLevel: 'error' }, ['node', 'x.js', '--data', 'd'], { ...env, PATH: `/nonexistent:${path.dirname(process.execPath)}` }, dir);
  t.equal(s.drainGraceMs, 250);
  t.same(s.listen, ['c=tcp://127.0.0.1:3']);
  t.equal(s.verbose, true);
  t.equal(s.logLevel, 'error');
  t.equal(s.command, path.join(path.dirname(process.execPath), 'node'), 'a bare name is looked up in PATH');
  t.same(s.args, ['x.js', '--data', 'd']);
  t.equal(s.sources['drain-grace'], 'flag');
});

t.test('run settings: defaults and systemd directories', async (t) => {
  const s = resolveRunSettings({}, [process.execPath], { STATE_DIRECTORY: '/var/lib/svc', RUNTIME_DIRECTORY: '/run/svc' }, '/tmp');
  t.equal(s.stateDir, '/var/lib/svc');
  t.equal(s.adminSocket, '/run/svc/handoff.sock');
  t.equal(s.drainGraceMs, DEFAULT_OPTIONS.drainGraceMs);
  t.equal(s.deadlineMs, DEFAULT_OPTIONS.deadlineMs);
  t.equal(s.logLevel, 'info');
  t.equal(s.lockPath, undefined);
  t.same(s.listen, []);
  const plain = resolveRunSettings({}, [process.execPath], {}, '/srv');
  t.equal(plain.stateDir, '/srv/.handoff');
  t.equal(plain.adminSocket, './handoff.sock');
});

t.test('run settings: every mistake is a usage error (exit 2) with one clear line', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcfg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const cases: Array<[Parameters<typeof resolveRunSettings>, RegExp]> = [
    [[{}, [], {}], /no command to supervise/],
    [[{ drainGrace: '5 parsecs' }, ['x'], {}], /--drain-grace: invalid duration '5 parsecs'/],
    [[{}, ['x'], { HANDOFF_DEADLINE: 'soon' }], /HANDOFF_DEADLINE: invalid duration 'soon'/],
    [[{ heartbeat: '2s', heartbeatTimeout: '1s' }, ['x'], {}], /--heartbeat-timeout .* must be longer than --heartbeat/],
    [[{ restartInitial: '10s', restartMax: '1s' }, ['x'], {}], /--restart-max/],
    [[{ logLevel: 'loud' }, ['x'], {}], /log level 'loud'/],
    [[{}, ['x'], { HANDOFF_VERBOSE: 'maybe' }], /HANDOFF_VERBOSE: expected a boolean/],
    [[{ config: path.join(dir, 'missing.json') }, ['x'], {}], /cannot read config file .*ENOENT/],
    [[{ config: write('bad.json', '{') }, ['x'], {}], /is not valid JSON/],
    [[{ config: write('arr.json', '[]') }, ['x'], {}], /must hold a JSON object/],
    [[{ config: write('unk.json', '{"drainGrace": "1s"}') }, ['x'], {}], /unknown key 'drainGrace'/],
    [[{ config: write('type.json', '{"deadline": true}') }, ['x'], {}], /'deadline' must be a duration/],
    [[{ config: write('list.json', '{"listen": [1]}') }, ['x'], {}], /'listen' must be a string or an array of strings/],
    [[{ config: write('cmd.json', '{"command": "node main.js"}') }, [], {}], /'command' must be a non-empty array/],
    [[{ config: write('bool.json', '{"verbose": "yes"}') }, ['x'], {}], /'verbose' must be true or false/],
    [[{ config: write('dur.json', '{"deadline": "1y"}') }, ['x'], {}], /config 'deadline': invalid duration/],
    [[{ config: write('str.json', '{"lock": 5}') }, ['x'], {}], /'lock' must be a string/],
    [[{}, ['no-such-program-xyz'], { PATH: '/bin:/usr/bin' }], /command not found or not executable: no-such-program-xyz/],
    [[{}, ['./missing'], {}], /command not found or not executable: \.\/missing/],
    [[{}, ['/etc/passwd'], {}], /command not found or not executable: \/etc\/passwd/],
    [[{ listen: ['http=tcp://localhost:80'] }, [process.execPath], {}], /--listen: bad listener/],
  ];
  for (const [args, msg] of cases) {
    try {
      resolveRunSettings(...args);
      t.fail(`no error for ${String(msg)}`);
    } catch (err) {
      t.ok(err instanceof CliError, String(msg));
      t.equal((err as CliError).exitCode, 2);
      t.match((err as CliError).message, msg);
      t.notMatch((err as CliError).message, /\n/);
    }
  }
});

t.test('children do not inherit the variables that configured S', async (t) => {
  const env = childEnvironment({ HANDOFF_DRAIN_GRACE: '1s', HANDOFF_ADMIN_SOCKET: '/x', HANDOFF_CONFIG: '/c', PATH: '/bin', HANDOFF_OTHER: 'kept' });
  t.same(env, { PATH: '/bin', HANDOFF_OTHER: 'kept' });
});

t.test('upgrade builds its request: --exec paths resolved, args verbatim, durations in ms', async (t) => {
  t.same(upgradeBody({}, [], '/w'), {});
  t.same(upgradeBody({ exec: 'bin/kv', deadline: '30s', drainGrace: '2s' }, ['--data', 'rel/d'], '/w'), { command: '/w/bin/kv', args: ['--data', 'rel/d'], deadline_ms: 30_000, drain_grace_ms: 2000 });
  t.same(upgradeBody({ exec: 'node' }, [], '/w'), { command: 'node' }, 'not in PATH: sent as is');
  t.same(upgradeBody({ exec: 'node' }, [], '/w', { PATH: path.dirname(process.execPath) }), { command: path.join(path.dirname(process.execPath), 'node') });
  t.same(upgradeBody({ exec: '/abs/x' }, [], '/w'), { command: '/abs/x' });
  const exitOf = (fn: () => unknown): number | undefined => {
    try {
      fn();
    } catch (err) {
      return err instanceof CliError ? err.exitCode : -1;
    }
    return undefined;
  };
  t.throws(() => upgradeBody({ deadline: 'never' }, [], '/w'), { name: 'CliError', message: /--deadline: invalid duration/ });
  t.equal(exitOf(() => upgradeBody({ deadline: 'never' }, [], '/w')), 2);
  t.equal(exitOf(() => upgradeBody({ exec: '' }, [], '/w')), 2);
  t.equal(parseCount(undefined, 10), 10);
  t.equal(parseCount('3', 10), 3);
  for (const bad of ['0', '-1', 'x', '1.5', '100001']) t.equal(exitOf(() => parseCount(bad, 10)), 2, bad);
});
