import t from 'tap';
import { CONTRACT_VARS, ContractError, LISTEN_FDS_START, contractEnv, controlFd, inheritedListeners, listenFds, readContract } from '../../src/shared/contract.js';

t.test('the environment S sets', (t) => {
  const c = readContract({
    LISTEN_FDS: '2',
    LISTEN_FDNAMES: 'http:admin',
    HANDOFF_SOCK_FD: '5',
    HANDOFF_ROLE: 'successor',
    HANDOFF_LOCK_PATH: '/var/lib/kv/lock',
    HANDOFF_HEARTBEAT_MS: '200',
    HANDOFF_HEARTBEAT_TIMEOUT_MS: '1500',
    HANDOFF_DRAIN_GRACE_MS: '25000',
  });
  t.same(c, {
    supervised: true,
    role: 'successor',
    sockFd: 5,
    listeners: [
      { name: 'http', fd: 3 },
      { name: 'admin', fd: 4 },
    ],
    lockPath: '/var/lib/kv/lock',
    heartbeatMs: 200,
    heartbeatTimeoutMs: 1500,
    drainGraceMs: 25000,
  });
  t.end();
});

t.test('defaults, and running without S', (t) => {
  t.same(readContract({}), { supervised: false, role: 'cold-start', sockFd: undefined, listeners: [], lockPath: undefined, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, drainGraceMs: undefined });
  t.same(inheritedListeners({ LISTEN_FDS: '2' }), [
    { name: 'unknown', fd: 3 },
    { name: 'unknown', fd: 4 },
  ]);
  t.equal(readContract({ HANDOFF_SOCK_FD: '3', HANDOFF_LOCK_PATH: '' }).lockPath, undefined, 'an empty lock path is none');
  t.equal(readContract({ HANDOFF_DRAIN_GRACE_MS: '0' }).drainGraceMs, 0, 'a zero drain grace is one');
  t.end();
});

t.test('a malformed contract is refused', (t) => {
  for (const [env, re] of [
    [{ LISTEN_FDS: 'x' }, /LISTEN_FDS="x" is not a count/],
    [{ LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' }, /LISTEN_FDNAMES has 2 names for LISTEN_FDS=1/],
    [{ HANDOFF_SOCK_FD: '2' }, /HANDOFF_SOCK_FD must be between/],
    [{ HANDOFF_ROLE: 'boss', HANDOFF_SOCK_FD: '3' }, /HANDOFF_ROLE must be/],
    [{ HANDOFF_ROLE: 'successor' }, /needs HANDOFF_SOCK_FD/],
    [{ LISTEN_FDS: '1', HANDOFF_SOCK_FD: '3' }, /is one of the listener fds/],
    [{ HANDOFF_SOCK_FD: '4', HANDOFF_HEARTBEAT_MS: '0' }, /HANDOFF_HEARTBEAT_MS must be between/],
    [{ HANDOFF_DRAIN_GRACE_MS: '2.5' }, /HANDOFF_DRAIN_GRACE_MS is not a non-negative integer/],
    [{ HANDOFF_DRAIN_GRACE_MS: '2147483648' }, /HANDOFF_DRAIN_GRACE_MS must be between/],
  ] as const) {
    t.throws(() => readContract(env), ContractError);
    t.throws(() => readContract(env), re);
  }
  t.end();
});

t.test('what S writes is what the library reads', (t) => {
  const base = { PATH: '/usr/bin', HANDOFF_SOCK_FD: '9', LISTEN_PID: '1', HANDOFF_LOCK_PATH: '/stale' };
  const env = contractEnv(base, { role: 'successor', listenerNames: ['http', 'admin'], heartbeatMs: 200, heartbeatTimeoutMs: 1500, drainGraceMs: 25000 });
  t.equal(env['PATH'], '/usr/bin', 'the rest of the environment passes on');
  t.equal(env['LISTEN_PID'], undefined, 'a stale contract variable does not reach the child');
  t.equal(env['HANDOFF_LOCK_PATH'], undefined, 'no lock path: none, not the stale one');
  t.same(base, { PATH: '/usr/bin', HANDOFF_SOCK_FD: '9', LISTEN_PID: '1', HANDOFF_LOCK_PATH: '/stale' }, 'the base is not changed');
  t.same(readContract(env), {
    supervised: true,
    role: 'successor',
    sockFd: controlFd(2),
    listeners: [
      { name: 'http', fd: LISTEN_FDS_START },
      { name: 'admin', fd: LISTEN_FDS_START + 1 },
    ],
    lockPath: undefined,
    heartbeatMs: 200,
    heartbeatTimeoutMs: 1500,
    drainGraceMs: 25000,
  });
  t.equal(readContract(contractEnv({}, { role: 'cold-start', listenerNames: [], lockPath: '/l', heartbeatMs: 1, heartbeatTimeoutMs: 2, drainGraceMs: 0 })).lockPath, '/l');
  for (const k of Object.keys(env)) if (k !== 'PATH') t.ok(CONTRACT_VARS.includes(k), `${k} is a contract variable`);
  t.end();
});

t.test('LISTEN_FDS as systemd passes it', (t) => {
  t.same(listenFds({}), [], 'nothing passed');
  t.same(listenFds({ LISTEN_FDS: '2' }), [
    { fd: 3, name: undefined },
    { fd: 4, name: undefined },
  ]);
  t.same(listenFds({ LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' }), [{ fd: 3, name: 'web' }]);
  t.throws(() => listenFds({ LISTEN_FDS: '-1' }), ContractError);
  t.end();
});
