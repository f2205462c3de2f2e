import fs from 'node:fs';
import t from 'tap';
import { ERROR_KINDS, MAX_REASON_DETAIL, ProtocolError, abortReason, asProtocolError, isErrorKind, parseReason } from '../../src/protocol/index.js';

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
const detailOf = (reason: string): string => reason.slice(reason.indexOf(': ') + 2);

t.test('the error kinds are those ARCHITECTURE.md lists', (t) => {
  const doc = fs.readFileSync(new URL('../../ARCHITECTURE.md', import.meta.url), 'utf8');
  const section = /stable `kind`:([\s\S]*?)An `Abort.reason`/.exec(doc)?.[1] ?? '';
  const listed = [...section.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]);
  t.same(listed, [...ERROR_KINDS], 'the same kinds, in the same order');
  t.equal(new Set(ERROR_KINDS).size, ERROR_KINDS.length);
  for (const k of ERROR_KINDS) t.match(k, /^[a-z_]+$/);
  t.ok(isErrorKind('frame_too_large'));
  t.notOk(isErrorKind('Frame_too_large'));
  t.notOk(isErrorKind('toString'));
  t.end();
});

t.test('ProtocolError carries kind and detail; its message is the reason form', (t) => {
  const e = new ProtocolError('lock_held', 'by pid 12');
  t.ok(e instanceof Error);
  t.equal(e.name, 'ProtocolError');
  t.equal(e.kind, 'lock_held');
  t.equal(e.detail, 'by pid 12');
  t.equal(e.message, 'lock_held: by pid 12');
  t.equal(e.toReason(), 'lock_held: by pid 12');
  t.end();
});

t.test('abortReason keeps only the first line', (t) => {
  t.equal(abortReason('seal_failed', 'disk full\n    at seal (/srv/app/seal.js:10:3)\n    at main'), 'seal_failed: disk full');
  t.equal(abortReason('seal_failed', 'disk full\r\nsecond'), 'seal_failed: disk full');
  t.equal(abortReason('seal_failed', 'disk full\rsecond'), 'seal_failed: disk full', 'a lone CR ends the line too');
  t.equal(abortReason('seal_failed', 'disk full\u2028second'), 'seal_failed: disk full', 'and U+2028');
  t.equal(abortReason('seal_failed', '\nsecond'), 'seal_failed: ', 'an empty first line gives an empty detail');
  t.equal(abortReason('seal_failed', ''), 'seal_failed: ');
  const err = new Error('boom');
  t.equal(abortReason('incumbent_failed', err.stack ?? ''), 'incumbent_failed: Error: boom', 'a stack trace keeps its first line only');
  t.end();
});

t.test('abortReason drops control characters (C0, DEL, C1) and trims', (t) => {
  t.equal(abortReason('operator_abort', 'a\tb\u0000c\u001bd\u007fe\u0085f\u009bg'), 'operator_abort: abcdefg');
  t.equal(abortReason('operator_abort', '\u001b[31mred\u001b[0m'), 'operator_abort: [31mred[0m', 'an escape sequence loses its ESC');
  t.equal(abortReason('operator_abort', '  padded  '), 'operator_abort: padded');
  t.equal(abortReason('operator_abort', 'é ü 😀 \u00a0nbsp'), 'operator_abort: é ü 😀 \u00a0nbsp', 'printable non-ASCII is kept');
  const all = Array.from({ length: 0xa0 }, (_, i) => String.fromCharCode(i)).join('');
  // eslint-disable-next-line no-control-regex -- no control character may remain
  t.notMatch(detailOf(abortReason('operator_abort', all.replace(/[\n\r]/g, ''))), /[\u0000-\u001f\u007f-\u009f]/);
  t.end();
});

t.test('abortReason cuts the detail to 512 bytes without splitting a character', (t) => {
  t.equal(MAX_REASON_DETAIL, 512);
  const cases: Array<[string, string, number]> = [
    ['512 ASCII bytes are kept whole', 'x'.repeat(512), 512],
    ['513 ASCII bytes lose one', 'x'.repeat(513), 512],
    ['2-byte chars: cut falls on a boundary', 'é'.repeat(300), 512],
    ['3-byte chars: 170 fit (510 bytes)', '€'.repeat(200), 510],
    ['4-byte chars: 128 fit', '😀'.repeat(200), 512],
    ['a 4-byte char straddling the limit is dropped whole', 'a' + '😀'.repeat(200), 509],
    ['a 3-byte char straddling by one byte', 'x'.repeat(510) + '€€', 510],
    ['a genuine U+FFFD just inside the limit is kept', 'x'.repeat(509) + '\uFFFD' + 'yyyy', 512],
  ];
  for (const [label, detail, wantBytes] of cases) {
    const d = detailOf(abortReason('deadline_exceeded', detail));
    t.equal(bytes(d), wantBytes, label);
    t.ok(detail.startsWith(d), `${label}: a prefix of the original (nothing made up, no U+FFFD added)`);
  }
  t.end();
});

t.test('toReason is abortReason of the error', (t) => {
  const e = new ProtocolError('malformed_message', `line one\nline two ${'z'.repeat(600)}`);
  t.equal(e.toReason(), 'malformed_message: line one');
  t.equal(new ProtocolError('malformed_message', 'q'.repeat(600)).toReason(), `malformed_message: ${'q'.repeat(512)}`);
  t.end();
});

t.test('parseReason splits kind and detail; an unknown kind stays in the detail', (t) => {
  t.strictSame(parseReason('frame_malformed: stream ended: early'), { kind: 'frame_malformed', detail: 'stream ended: early' });
  t.strictSame(parseReason('peer_closed'), { kind: 'peer_closed', detail: '' });
  t.strictSame(parseReason('peer_closed: '), { kind: 'peer_closed', detail: '' });
  t.strictSame(parseReason('weird: thing'), { kind: undefined, detail: 'weird: thing' });
  t.strictSame(parseReason('no kind at all'), { kind: undefined, detail: 'no kind at all' });
  for (const k of ERROR_KINDS) t.strictSame(parseReason(abortReason(k, 'd')), { kind: k, detail: 'd' }, `${k} round-trips`);
  t.end();
});

t.test('asProtocolError keeps a ProtocolError and wraps anything else without its stack', (t) => {
  const pe = new ProtocolError('lock_held', 'x');
  t.equal(asProtocolError(pe, 'malformed_message'), pe);
  const wrapped = asProtocolError(new TypeError('bad thing'), 'incumbent_failed');
  t.equal(wrapped.kind, 'incumbent_failed');
  t.equal(wrapped.detail, 'bad thing');
  t.strictSame([asProtocolError('text', 'seal_failed').detail, asProtocolError(42, 'seal_failed').detail, asProtocolError(undefined, 'seal_failed').detail], ['text', '42', 'undefined']);
  t.end();
});
