#!/usr/bin/env node
// Compares two V8 heap snapshots of the same process (node:v8 writeHeapSnapshot, or
// `bench/leak.ts --snapshots DIR`): which objects of the later one were allocated after the
// earlier one was taken and are still alive, grouped by constructor, and who retains a sample of
// them. V8 keeps an object's snapshot id for its whole life, so "id above the earlier snapshot's
// highest id" means "allocated in between"; what survived a full GC in between is retained.
//
//   node scripts/heap-diff.mjs before.heapsnapshot after.heapsnapshot [--top 25] [--paths 3] [--depth 12] [--show KEY]
//
// --show KEY: retainer paths for that group only (a key as printed in the table, e.g. `Array`).

import fs from 'node:fs';

function parseArgs(argv) {
  const a = { files: [], top: 25, paths: 3, depth: 12, show: undefined };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--top' || k === '--paths' || k === '--depth') a[k.slice(2)] = Number(argv[++i]);
    else if (k === '--show') a.show = argv[++i];
    else a.files.push(k);
  }
  if (a.files.length !== 2) {
    process.stderr.write('usage: heap-diff.mjs before.heapsnapshot after.heapsnapshot [--top N] [--paths N] [--depth N]\n');
    process.exit(2);
  }
  return a;
}

function load(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const m = snap.snapshot.meta;
  const nf = m.node_fields.length;
  const ef = m.edge_fields.length;
  const f = (name) => m.node_fields.indexOf(name);
  const g = (name) => m.edge_fields.indexOf(name);
  const h = {
    nodes: snap.nodes,
    edges: snap.edges,
    strings: snap.strings,
    nf,
    ef,
    nType: f('type'),
    nName: f('name'),
    nId: f('id'),
    nSize: f('self_size'),
    nEdges: f('edge_count'),
    eType: g('type'),
    eName: g('name_or_index'),
    eTo: g('to_node'),
    nodeTypes: m.node_types[f('type')],
    edgeTypes: m.edge_types[g('type')],
  };
  h.count = h.nodes.length / nf;
  // First edge of each node, and the reverse edges (retainers).
  h.firstEdge = new Uint32Array(h.count + 1);
  for (let i = 0, e = 0; i < h.count; i++) {
    h.firstEdge[i] = e;
    e += h.nodes[i * nf + h.nEdges] * ef;
    h.firstEdge[i + 1] = e;
  }
  const retCount = new Uint32Array(h.count + 1);
  for (let e = 0; e < h.edges.length; e += ef) retCount[h.edges[e + h.eTo] / nf]++;
  h.retFirst = new Uint32Array(h.count + 1);
  for (let i = 0; i < h.count; i++) h.retFirst[i + 1] = h.retFirst[i] + retCount[i];
  h.retEdge = new Uint32Array(h.edges.length / ef);
  h.retFrom = new Uint32Array(h.edges.length / ef);
  const fill = h.retFirst.slice();
  for (let i = 0; i < h.count; i++) {
    for (let e = h.firstEdge[i]; e < h.firstEdge[i + 1]; e += ef) {
      const to = h.edges[e + h.eTo] / nf;
      const k = fill[to]++;
      h.retEdge[k] = e;
      h.retFrom[k] = i;
    }
  }
  return h;
}

const type = (h, i) => h.nodeTypes[h.nodes[i * h.nf + h.nType]];
const name = (h, i) => h.strings[h.nodes[i * h.nf + h.nName]];
const id = (h, i) => h.nodes[i * h.nf + h.nId];
const size = (h, i) => h.nodes[i * h.nf + h.nSize];

function label(h, i) {
  const t = type(h, i);
  const n = name(h, i);
  if (t === 'string' || t === 'concatenated string' || t === 'sliced string') return `string "${n.slice(0, 40).replace(/\n/g, ' ')}"`;
  return `${t === 'object' ? '' : `(${t}) `}${n.slice(0, 60)}`;
}

function edgeLabel(h, e) {
  const t = h.edgeTypes[h.edges[e + h.eType]];
  const n = h.edges[e + h.eName];
  if (t === 'element' || t === 'hidden') return `[${n}]`;
  return t === 'context' ? `<ctx ${h.strings[n]}>` : `.${h.strings[n]}`;
}

/** Shortest retainer path from a GC root to node `start` (BFS backwards over non-weak edges). */
function retainerPath(h, start, maxDepth) {
  const prev = new Map([[start, null]]);
  let frontier = [start];
  for (let d = 0; d < maxDepth && frontier.length > 0; d++) {
    const next = [];
    for (const n of frontier) {
      for (let k = h.retFirst[n]; k < h.retFirst[n + 1]; k++) {
        const e = h.retEdge[k];
        if (h.edgeTypes[h.edges[e + h.eType]] === 'weak') continue;
        const from = h.retFrom[k];
        if (prev.has(from)) continue;
        prev.set(from, { to: n, e });
        const t = type(h, from);
        if (t === 'synthetic' || from === 0) {
          const steps = [];
          for (let cur = from; cur !== start; ) {
            const p = prev.get(cur);
            steps.push(`${label(h, cur)} ${edgeLabel(h, p.e)}`);
            cur = p.to;
          }
          steps.push(label(h, start));
          return steps;
        }
        next.push(from);
      }
    }
    frontier = next;
  }
  return null;
}

const args = parseArgs(process.argv.slice(2));
const before = load(args.files[0]);
// Node's native (embedder) and synthetic nodes have ids of their own (hashes, large numbers); only
// V8 heap objects have ids that grow with allocation.
const outsideV8 = (t) => t === 'native' || t === 'synthetic';
let maxId = 0;
for (let i = 0; i < before.count; i++) if (!outsideV8(type(before, i))) maxId = Math.max(maxId, id(before, i));
const totalBefore = (() => {
  let s = 0;
  for (let i = 0; i < before.count; i++) s += size(before, i);
  return s;
})();
before.nodes = before.edges = null;

const after = load(args.files[1]);
const groups = new Map();
let totalAfter = 0;
let newBytes = 0;
let newCount = 0;
for (let i = 0; i < after.count; i++) {
  totalAfter += size(after, i);
  const t = type(after, i);
  if (outsideV8(t) || id(after, i) <= maxId) continue;
  const key = t === 'object' || t === 'closure' ? `${t === 'closure' ? '(closure) ' : ''}${name(after, i)}` : `(${t})${t === 'string' ? '' : ` ${name(after, i).slice(0, 50)}`}`;
  let gr = groups.get(key);
  if (!gr) groups.set(key, (gr = { count: 0, bytes: 0, sample: [] }));
  gr.count++;
  gr.bytes += size(after, i);
  if (gr.sample.length < args.paths) gr.sample.push(i);
  newBytes += size(after, i);
  newCount++;
}
const out = (s) => process.stdout.write(`${s}\n`);
out(`heap: ${totalBefore} B -> ${totalAfter} B (${totalAfter - totalBefore >= 0 ? '+' : ''}${totalAfter - totalBefore} B)`);
out(`objects allocated after the first snapshot and alive in the second: ${newCount} (${newBytes} B self size)`);
out('');
const sorted = [...groups.entries()].sort((a, b) => b[1].bytes - a[1].bytes || b[1].count - a[1].count).slice(0, args.top);
out('| count | self bytes | constructor |');
out('|---:|---:|---|');
for (const [k, g] of sorted) out(`| ${g.count} | ${g.bytes} | ${k.replace(/\|/g, '\\|')} |`);
out('');
const detailed = args.show !== undefined ? [...groups.entries()].filter(([k]) => k === args.show) : sorted.slice(0, Math.min(args.top, 10));
for (const [k, g] of detailed) {
  out(`## ${k} (${g.count} new)`);
  for (const i of g.sample) {
    const p = retainerPath(after, i, args.depth);
    out(p ? `  ${p.join('\n    -> ')}` : '  (no root within depth)');
    out('');
  }
}
