import http from 'node:http';

/**
 * One request to S's admin API over its Unix socket, with a raw body; the answer's status and text.
 * `ms` bounds the wait (unbounded when not given).
 */
export function adminRequest(sock: string, method: string, p: string, body?: string, ms?: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, method, path: p, agent: false, headers: body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (ms !== undefined) req.setTimeout(ms, () => req.destroy(new Error(`admin ${method} ${p} timed out`)));
    req.end(body);
  });
}
