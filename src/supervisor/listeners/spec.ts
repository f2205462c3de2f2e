/** Parsing `--listen NAME=ADDRESS` specs; nothing here touches a socket. */

import net from 'node:net';
import { ListenerError } from './error.js';

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;
const MAX_NAME_LENGTH = 255;

export type ListenerSpec =
  | { name: string; kind: 'tcp'; host: string; port: number; spec: string }
  | { name: string; kind: 'unix'; path: string; spec: string };

/** A valid LISTEN_FDNAMES name (as systemd's fdname_is_valid), non-empty, and without '=' (our separator). */
export function isValidListenerName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x3a /* : */ || c === 0x3d /* = */) return false;
  }
  return true;
}

/** Parses `NAME=tcp://HOST:PORT` (HOST an IPv4 address or `[IPv6]`, PORT 0-65535) or `NAME=unix:/PATH`. */
export function parseListen(spec: string): ListenerSpec {
  const shown = JSON.stringify(spec.length > 300 ? `${spec.slice(0, 300)}...` : spec);
  const bad = (why: string, name?: string): ListenerError =>
    new ListenerError('bad_spec', `bad listener ${shown}: ${why}`, name);
  const eq = spec.indexOf('=');
  if (eq < 0) throw bad('expected NAME=tcp://HOST:PORT or NAME=unix:/PATH');
  const name = spec.slice(0, eq);
  const url = spec.slice(eq + 1);
  if (!isValidListenerName(name)) {
    throw bad(`name must be 1-${MAX_NAME_LENGTH} printable ASCII characters without ':' or '='`);
  }
  if (url.startsWith('tcp://')) {
    const rest = url.slice('tcp://'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw bad('missing :PORT', name);
    let host = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    if (host.startsWith('[') && host.endsWith(']')) {
      host = host.slice(1, -1);
      if (!net.isIPv6(host)) throw bad(`${JSON.stringify(host)} is not an IPv6 address`, name);
    } else if (!net.isIPv4(host)) {
      throw bad('host must be an IPv4 address or an IPv6 address in brackets, not a host name', name);
    }
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) throw bad('port must be 0-65535', name);
    return { name, kind: 'tcp', host, port: Number(portText), spec };
  }
  if (url.startsWith('unix:')) {
    const p = url.slice('unix:'.length);
    if (!p.startsWith('/')) throw bad('unix path must be absolute', name);
    if (p.includes('\0')) throw bad('unix path contains a NUL byte', name);
    if (p.endsWith('/')) throw bad('unix path names a directory', name);
    const bytes = Buffer.byteLength(p);
    if (bytes > MAX_UNIX_PATH_BYTES) throw bad(`unix path is ${bytes} bytes, at most ${MAX_UNIX_PATH_BYTES}`, name);
    return { name, kind: 'unix', path: p, spec };
  }
  throw bad('address must start with tcp:// or unix:', name);
}

/** Parses all specs, rejecting duplicate names. */
export function parseListens(specs: readonly string[]): ListenerSpec[] {
  const out = specs.map((s) => parseListen(s));
  checkUniqueNames(out);
  return out;
}

/** Exported for bindListeners, which may be given specs not from parseListens. */
export function checkUniqueNames(specs: readonly ListenerSpec[]): void {
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new ListenerError('duplicate_name', `duplicate listener name ${JSON.stringify(s.name)}`, s.name);
    seen.add(s.name);
  }
}
