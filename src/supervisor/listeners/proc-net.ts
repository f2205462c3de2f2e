/** Listening-socket addresses from /proc/net, found by the socket's inode: how S names inherited fds. */

import fs from 'node:fs';
import os from 'node:os';

/** The address of the listening socket at `fd`, from /proc/net; null when it cannot be told. */
export function socketAddress(fd: number): string | null {
  return new SocketTable().addressOf(fd);
}

/** Finds a listening socket's address by its inode in /proc/net/{tcp,tcp6,unix}. Read lazily, once. */
export class SocketTable {
  private byInode: Map<string, string> | null = null;

  addressOf(fd: number): string | null {
    let link: string;
    try {
      link = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return null;
    }
    const m = /^socket:\[([0-9]+)\]$/.exec(link);
    if (!m?.[1]) return null;
    this.byInode ??= readSocketTable();
    const address = this.byInode.get(m[1]) ?? null;
    // /proc/net/unix shows the name the socket was bound to; it may have been renamed or removed since.
    if (address?.startsWith('unix:/') && !isSocketPath(address.slice('unix:'.length))) return null;
    return address;
  }
}

function isSocketPath(p: string): boolean {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

function readProc(p: string): string[] {
  try {
    return fs.readFileSync(p, 'utf8').split('\n').slice(1);
  } catch {
    return [];
  }
}

function readSocketTable(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    for (const line of readProc(file)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const local = f[1];
      const state = f[3];
      const inode = f[9];
      if (!local || state !== '0A' || !inode) continue; // 0A: TCP_LISTEN
      const addr = parseProcTcpAddress(local, v6);
      if (addr) out.set(inode, addr);
    }
  }
  for (const line of readProc('/proc/net/unix')) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path
    const flags = f[3];
    const inode = f[6];
    const p = f.slice(7).join(' ');
    if (!flags || !inode || !p) continue;
    if ((parseInt(flags, 16) & 0x10000) === 0) continue; // __SO_ACCEPTCON: listening
    out.set(inode, `unix:${p}`);
  }
  return out;
}

/** `0100007F:1F90` → `tcp://127.0.0.1:8080`; the address words are in host byte order. */
export function parseProcTcpAddress(text: string, v6: boolean): string | null {
  const [hex, portHex] = text.split(':');
  if (!hex || !portHex || hex.length !== (v6 ? 32 : 8)) return null;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    if (os.endianness() === 'LE') bytes.writeUInt32LE(word, w * 4);
    else bytes.writeUInt32BE(word, w * 4);
  }
  const port = parseInt(portHex, 16);
  if (!v6) return `tcp://${Array.from(bytes).join('.')}:${port}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return `tcp://[${compressV6(groups)}]:${port}`;
}

function compressV6(groups: string[]): string {
  // the longest run of two or more zero groups becomes '::'
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
