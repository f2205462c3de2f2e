/** The bind helper's program and the messages it sends S: both ends of one small protocol. */

/**
 * The helper, run as `node -e HELPER_SOURCE <specs JSON>` (CommonJS; no file to find, so it works
 * the same from the sources, from dist/ and from an installed package). For each spec in turn: bind
 * and listen, send the handle, close the helper's own copy in the send callback (same tick: its
 * event loop never polls the socket, so it never accepts), wait for S's ack. A unix socket is bound
 * under a temporary name and renamed into place before it is sent: libuv unlinks a pipe's bound path
 * when the pipe is closed, and the rename also replaces a stale socket file atomically.
 */
export const HELPER_SOURCE = String.raw`'use strict';
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const specs = JSON.parse(process.argv[1]);
const BACKLOG = Number(process.argv[2]);
const MAXPATH = Number(process.argv[3]);
process.umask(Number(process.argv[4]) ^ 0o777);
let index = 0;
function fail(spec, err) {
  const code = (err && typeof err.code === 'string') ? err.code : 'EUNKNOWN';
  const message = String((err && err.message) || err).split('\n')[0].replace(/^[a-z]+ E[A-Z]+: /, '');
  process.send({ type: 'error', index, name: spec.name, code, message }, () => process.disconnect());
}
function checkStale(spec, done) {
  // libuv reports a missing directory as EACCES; say what is wrong instead.
  const dir = path.dirname(spec.path);
  let dst;
  try { dst = fs.statSync(dir); } catch (e) { e.message = 'directory ' + dir + ': ' + (e.code === 'ENOENT' ? 'does not exist' : e.message); return fail(spec, e); }
  if (!dst.isDirectory()) { const e = new Error(dir + ' is not a directory'); e.code = 'ENOTDIR'; return fail(spec, e); }
  let st;
  try { st = fs.lstatSync(spec.path); } catch (e) { return e.code === 'ENOENT' ? done() : fail(spec, e); }
  if (!st.isSocket()) { const e = new Error(spec.path + ' exists and is not a socket'); e.code = 'EEXIST'; return fail(spec, e); }
  const c = net.connect(spec.path);
  c.once('connect', () => { c.destroy(); const e = new Error('another process listens on ' + spec.path); e.code = 'EADDRINUSE'; fail(spec, e); });
  c.once('error', (e) => e.code === 'ECONNREFUSED' ? done() : fail(spec, e));
}
function listen(spec) {
  const server = net.createServer();
  server.on('connection', (c) => c.destroy());
  let tmp = null;
  server.once('error', (e) => {
    if (tmp) { try { fs.unlinkSync(tmp); } catch {} e.message = String(e.message).split(tmp).join(spec.path); }
    fail(spec, e);
  });
  const onListening = () => {
    let address, ino = null;
    if (spec.kind === 'unix') {
      try { ino = fs.lstatSync(tmp).ino; fs.renameSync(tmp, spec.path); } catch (e) { server.close(); return fail(spec, e); }
      address = 'unix:' + spec.path;
    } else {
      const a = server.address();
      address = a.family === 'IPv6' ? 'tcp://[' + a.address + ']:' + a.port : 'tcp://' + a.address + ':' + a.port;
    }
    process.send({ type: 'bound', index, name: spec.name, address, ino }, server._handle, (err) => {
      server.close();
      if (err) fail(spec, err);
    });
  };
  if (spec.kind === 'tcp') {
    server.listen({ host: spec.host, port: spec.port, backlog: BACKLOG }, onListening);
  } else {
    tmp = path.join(path.dirname(spec.path), '.' + crypto.randomBytes(4).toString('hex') + '.tmp');
    if (Buffer.byteLength(tmp) > MAXPATH) { const e = new Error('no room for a temporary name next to ' + spec.path + '; use a shorter path'); e.code = 'ENAMETOOLONG'; return fail(spec, e); }
    server.listen({ path: tmp, backlog: BACKLOG }, onListening);
  }
}
function next() {
  if (index >= specs.length) { process.disconnect(); return; }
  const spec = specs[index];
  if (spec.kind === 'unix') checkStale(spec, () => listen(spec)); else listen(spec);
}
process.on('message', (m) => { if (m && m.type === 'ack' && m.index === index) { index++; next(); } });
process.on('disconnect', () => process.exit(0));
next();
`;

export type HelperMessage =
  | { type: 'bound'; index: number; name: string; address: string; ino: number | null }
  | { type: 'error'; index: number; name: string; code: string; message: string };

export function isHelperMessage(m: unknown): m is HelperMessage {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (typeof r['index'] !== 'number' || typeof r['name'] !== 'string') return false;
  if (r['type'] === 'bound') return typeof r['address'] === 'string' && (r['ino'] === null || typeof r['ino'] === 'number');
  if (r['type'] === 'error') return typeof r['code'] === 'string' && typeof r['message'] === 'string';
  return false;
}
