import t from 'tap';
import { PROTO_MAX, PROTO_MIN, ProtocolError, negotiateVersion } from '../../src/protocol/index.js';

function mismatch(fn: () => unknown): ProtocolError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err;
    throw err;
  }
  return undefined;
}

t.test('the highest version in both ranges', (t) => {
  t.equal(negotiateVersion(1, 3, 2, 5), 3, '1..3 with 2..5');
  t.equal(negotiateVersion(2, 5, 1, 3), 3, 'symmetric');
  t.equal(negotiateVersion(1, 1, 1, 1), 1, '1..1 with 1..1');
  t.equal(negotiateVersion(1, 5, 3, 4), 4, '1..5 with 3..4');
  t.equal(negotiateVersion(3, 4, 1, 5), 4, 'nested the other way');
  t.equal(negotiateVersion(1, 3, 3, 9), 3, 'ranges touching at one version');
  t.equal(negotiateVersion(PROTO_MIN, PROTO_MAX, PROTO_MIN, PROTO_MAX), 1, 'v1 with itself');
  t.end();
});

t.test('no common version is version_mismatch naming both ranges', (t) => {
  const e = mismatch(() => negotiateVersion(1, 1, 2, 2));
  t.equal(e?.kind, 'version_mismatch', '1..1 with 2..2');
  t.equal(e?.detail, 'no common version: ours 1..1, theirs 2..2');
  t.equal(mismatch(() => negotiateVersion(4, 6, 1, 3))?.kind, 'version_mismatch', 'theirs entirely below');
  t.equal(mismatch(() => negotiateVersion(1, 3, 4, 6))?.detail, 'no common version: ours 1..3, theirs 4..6');
  t.end();
});

t.test('an inverted range is refused even if the bounds overlap the other range', (t) => {
  t.equal(mismatch(() => negotiateVersion(1, 5, 4, 2))?.kind, 'version_mismatch', 'theirs 4..2');
  t.equal(mismatch(() => negotiateVersion(4, 2, 1, 5))?.kind, 'version_mismatch', 'ours 4..2');
  t.end();
});
