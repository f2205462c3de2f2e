/** Durations, option precedence (flag > env > config > default), and the request `upgrade` builds. */

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { upgradeBody, parseCount } from '../../src/cli/commands.js';
import { childEnvironment, resolveRunSettings } from '../../src/cli/config.js';
import { durationLabel, formatDuration, parseDuration } from '../../src/cli/duration.js';
import { CliError } from '../../src/cli/errors.js';
import { checkName, clientAdminSocket, defaultAdminSocket, defaultName, defaultStateDir, firstDirectory, instances, prepareSocketDir, runtimeBase, stateBase, type Host } from '../../src/cli/paths.js';
import { DEFAULT_OPTIONS } from '../../src/supervisor/types.js';

t.test('durations parse with units; a bare number is refused, except 0', async (t) => {
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('5s'), 5000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('.5s'), 500);
  t.equal(parseDuration('2m'), 120_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration(' 10 s '), 10_000);
  t.equal(parseDuration('2147483647ms'), 2_147_483_647);
  for (const bad of ['', 's', '5x', '-5s', '5 seconds', '1e3', '0', '0ms', '0.0004s', '25d', '2147483648ms', 'NaN', '5s5', '750', '2147483647', '1.5']) {
    t.throws(() => parseDuration(bad), { name: 'DurationError' }, JSON.stringify(bad));
  }
  t.throws(() => parseDuration('750'), { message: "duration '750' has no unit: write 750ms or 750s (units: ms, s, m, h)" }, 'a bare number names the fix');
  t.throws(() => parseDuration('0'), { message: /must be at least 1ms/ }, '0 needs no unit: refused for its value only');
  t.throws(() => parseDuration(42), { message: /has no unit/ }, 'a JSON number too');
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

const user = (o: Partial<Host> = {}): Host => ({ uid: 1000, home: '/home/u', tmpdir: '/tmp', exists: () => false, ...o });

t.test('default paths: systemd directories, else per-user (or, for root, system) ones by instance name', async (t) => {
  t.equal(firstDirectory(undefined), undefined);
  t.equal(firstDirectory(''), undefined);
  t.equal(firstDirectory('/run/a:/run/b'), '/run/a');
  t.equal(defaultAdminSocket({ RUNTIME_DIRECTORY: '/run/kv' }, 'kv', user()), '/run/kv/handoff.sock');
  t.equal(defaultStateDir({ STATE_DIRECTORY: '/var/lib/kv:/var/lib/other' }, 'kv', user()), '/var/lib/kv');
  // Never the current directory.
  t.equal(defaultAdminSocket({ XDG_RUNTIME_DIR: '/run/user/1000' }, 'kv', user()), '/run/user/1000/handoff/kv.sock');
  t.equal(defaultAdminSocket({}, 'kv', user({ exists: (p) => p === '/run/user/1000' })), '/run/user/1000/handoff/kv.sock');
  t.equal(defaultAdminSocket({}, 'kv', user()), '/tmp/handoff-1000/kv.sock');
  t.equal(defaultStateDir({ XDG_STATE_HOME: '/xdg/state' }, 'kv', user()), '/xdg/state/handoff/kv');
  t.equal(defaultStateDir({ XDG_STATE_HOME: 'relative' }, 'kv', user()), '/home/u/.local/state/handoff/kv', 'a relative XDG path is ignored, as the spec says');
  t.equal(defaultStateDir({}, 'kv', user()), '/home/u/.local/state/handoff/kv');
  const root = user({ uid: 0 });
  t.equal(defaultAdminSocket({ XDG_RUNTIME_DIR: '/run/user/0' }, 'kv', root), '/run/handoff/kv.sock');
  t.equal(defaultStateDir({ XDG_STATE_HOME: '/root/.s' }, 'kv', root), '/var/lib/handoff/kv');
  t.equal(runtimeBase({}, root), '/run/handoff');
  t.equal(stateBase({}, root), '/var/lib/handoff');

  t.equal(defaultName('/usr/bin/kv-server'), 'kv-server');
  t.equal(defaultName('/opt/my app/.run me'), 'run-me');
  t.equal(checkName('kv-2.x_y'), 'kv-2.x_y');
  for (const bad of ['', '.hidden', '-x', 'a/b', 'x'.repeat(65)]) t.throws(() => checkName(bad), { name: 'CliError', exitCode: 2 }, JSON.stringify(bad));
});

t.test('client commands find the socket: flag, env, systemd, --name, else the only instance', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcfg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { XDG_RUNTIME_DIR: dir };
  const base = path.join(dir, 'handoff');
  t.equal(clientAdminSocket('/x.sock', { HANDOFF_ADMIN_SOCKET: '/y.sock' }), '/x.sock');
  t.equal(clientAdminSocket(undefined, { HANDOFF_ADMIN_SOCKET: '/y.sock', RUNTIME_DIRECTORY: '/run/kv' }), '/y.sock');
  t.equal(clientAdminSocket(undefined, { HANDOFF_ADMIN_SOCKET: '', RUNTIME_DIRECTORY: '/run/kv' }), '/run/kv/handoff.sock');
  t.equal(clientAdminSocket(undefined, env, 'kv', user()), path.join(base, 'kv.sock'));
  t.equal(clientAdminSocket(undefined, { ...env, HANDOFF_NAME: 'web' }, undefined, user()), path.join(base, 'web.sock'));
  t.throws(() => clientAdminSocket(undefined, env, undefined, user()), { name: 'CliError', exitCode: 2, message: /no supervisor running \(no admin socket in .*\)/ });

  prepareSocketDir(base, user({ uid: process.getuid?.() ?? 0 }));
  const listen = async (name: string): Promise<net.Server> => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path.join(base, `${name}.sock`), resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return server;
  };
  await listen('kv');
  fs.writeFileSync(path.join(base, 'notes.sock'), ''); // not a socket: not an instance
  t.same(instances(base), ['kv']);
  t.equal(clientAdminSocket(undefined, env, undefined, user()), path.join(base, 'kv.sock'), 'the only instance running');
  await listen('web');
  t.throws(() => clientAdminSocket(undefined, env, undefined, user()), { name: 'CliError', exitCode: 2, message: 'several supervisors run (kv, web): pass --name' });
  t.equal(clientAdminSocket(undefined, env, 'web', user()), path.join(base, 'web.sock'));
});

t.test('the tmpdir fallback must be private to this user', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hcfg-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const mine = runtimeBase({}, user({ tmpdir: tmp }));
  t.equal(mine, path.join(tmp, 'handoff-1000'));
  // The directory is owned by whoever runs the test (root, maybe): that is the host's user here.
  const uid = process.getuid?.() ?? 0;
  const host = user({ uid, tmpdir: tmp });
  prepareSocketDir(mine, host);
  t.equal(fs.statSync(mine).mode & 0o777, 0o700, 'created 0700');
  fs.chmodSync(mine, 0o777);
  t.throws(() => prepareSocketDir(mine, host), { name: 'CliError', message: /is not a private directory of this user/ }, 'one that others can write is refused');
  t.throws(() => prepareSocketDir(mine, { ...host, uid: uid + 1 }), { name: 'CliError' }, "one that is not this user's is refused");
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
      deadline: '9s',
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
  const s = resolveRunSettings({}, [process.execPath], { STATE_DIRECTORY: '/var/lib/svc', RUNTIME_DIRECTORY: '/run/svc' }, '/tmp', user());
  t.equal(s.stateDir, '/var/lib/svc');
  t.equal(s.adminSocket, '/run/svc/handoff.sock');
  t.equal(s.drainGraceMs, DEFAULT_OPTIONS.drainGraceMs);
  t.equal(s.deadlineMs, DEFAULT_OPTIONS.deadlineMs);
  t.equal(s.logLevel, 'info');
  t.equal(s.lockPath, undefined);
  t.same(s.listen, []);
  t.equal(s.logFormat, 'auto');
  t.equal(s.name, path.basename(process.execPath), "the instance is named after the command's basename");
  const plain = resolveRunSettings({}, [process.execPath], { XDG_RUNTIME_DIR: '/run/user/1000' }, '/srv', user());
  t.equal(plain.stateDir, `/home/u/.local/state/handoff/${plain.name}`, 'not under the current directory');
  t.equal(plain.adminSocket, `/run/user/1000/handoff/${plain.name}.sock`);
  const named = resolveRunSettings({ name: 'kv' }, [process.execPath], { XDG_RUNTIME_DIR: '/run/user/1000' }, '/srv', user());
  t.equal(named.adminSocket, '/run/user/1000/handoff/kv.sock');
  t.equal(named.stateDir, '/home/u/.local/state/handoff/kv');
  t.equal(resolveRunSettings({}, [process.execPath], { HANDOFF_NAME: 'web', HANDOFF_LOG_FORMAT: 'JSON' }, '/srv', user()).name, 'web');
  t.equal(resolveRunSettings({}, [process.execPath], { HANDOFF_LOG_FORMAT: 'JSON' }, '/srv', user()).logFormat, 'json');
  t.equal(resolveRunSettings({ logFormat: 'pretty' }, [process.execPath], {}, '/srv', user()).logFormat, 'pretty');
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
    // Says where, never what: the file may hold secrets, and a reload's error reaches API clients.
    [[{ config: write('secret.json', '{\n  "env": "TOKEN=hunter2" oops\n}') }, ['x'], {}], /^config file \S+secret\.json is not valid JSON \(at line 2, column \d+\)$/],
    [[{ config: write('arr.json', '[]') }, ['x'], {}], /must hold a JSON object/],
    [[{ config: write('unk.json', '{"drainGrace": "1s"}') }, ['x'], {}], /unknown key 'drainGrace'/],
    [[{ config: write('type.json', '{"deadline": true}') }, ['x'], {}], /'deadline' must be a duration/],
    [[{ config: write('list.json', '{"listen": [1]}') }, ['x'], {}], /'listen' must be a string or an array of strings/],
    [[{ config: write('cmd.json', '{"command": "node main.js"}') }, [], {}], /'command' must be a non-empty array/],
    [[{ config: write('bool.json', '{"verbose": "yes"}') }, ['x'], {}], /'verbose' must be true or false/],
    [[{ config: write('dur.json', '{"deadline": "1y"}') }, ['x'], {}], /config 'deadline': invalid duration/],
    [[{ config: write('bare.json', '{"deadline": 9000}') }, ['x'], {}], /config 'deadline': duration '9000' has no unit: write 9000ms or 9000s/],
    [[{ config: write('bares.json', '{"deadline": "9000"}') }, ['x'], {}], /config 'deadline': duration '9000' has no unit/],
    [[{ drainGrace: '30' }, ['x'], {}], /--drain-grace: duration '30' has no unit: write 30ms or 30s/],
    [[{}, ['x'], { HANDOFF_KILL_AFTER: '5' }], /HANDOFF_KILL_AFTER: duration '5' has no unit/],
    [[{ logFormat: 'xml' }, [process.execPath], {}], /log format 'xml' is not one of pretty, json/],
    [[{ name: '../etc' }, [process.execPath], {}], /--name: '\.\.\/etc' is not an instance name/],
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

t.test("children do not inherit the variables that configured S, but get S's log level and format", async (t) => {
  const env = childEnvironment({ HANDOFF_DRAIN_GRACE: '1s', HANDOFF_ADMIN_SOCKET: '/x', HANDOFF_CONFIG: '/c', HANDOFF_NAME: 'kv', PATH: '/bin', HANDOFF_OTHER: 'kept' });
  t.same(env, { PATH: '/bin', HANDOFF_OTHER: 'kept' });
  const withLog = childEnvironment({ HANDOFF_LOG_LEVEL: 'warn', HANDOFF_LOG_FORMAT: 'pretty', PATH: '/bin' }, { level: 'debug', format: 'json' });
  t.same(withLog, { PATH: '/bin', HANDOFF_LOG_LEVEL: 'debug', HANDOFF_LOG_FORMAT: 'json' });
});

t.test('upgrade builds its request: --exec paths resolved, args verbatim, durations in ms', async (t) => {
  t.same(upgradeBody({}, [], '/w'), {});
  t.same(upgradeBody({ exec: 'bin/kv', deadline: '30s', drainGrace: '2s', helloTimeout: '45s' }, ['--data', 'rel/d'], '/w'), { command: '/w/bin/kv', args: ['--data', 'rel/d'], deadline_ms: 30_000, drain_grace_ms: 2000, hello_timeout_ms: 45_000 });
  t.throws(() => upgradeBody({ helloTimeout: '30' }, [], '/w'), { name: 'CliError', exitCode: 2, message: "--hello-timeout: duration '30' has no unit: write 30ms or 30s (units: ms, s, m, h)" });
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
