#!/usr/bin/env node
// `npm run test:repeat`: the test suite N times in a row, to find flaky tests (issue 8, "Flakiness").
//
//   npm run test:repeat [-- --times 10] [--busy] [--max-minutes M] [--no-build] [test files...]
//
// Builds once (children run from dist/), then runs `tap` N times with the project's tap config and
// the TAP reporter, each run's full output kept in a log directory. Stops after the first run with a
// failure and prints which run failed, and each failing test: its path (file > subtest > …), the
// failing assertion, where it is, and what was found and wanted.
//
// --busy keeps the machine busy for the whole duration: one CPU burner process (pinned to the last
// CPU when `taskset` exists), so the tests run with a core's worth of CPU taken, as on a loaded CI
// machine. It is bounded: killed when the runs end, and it stops by itself after --max-minutes.
// Given test files, only those run (coverage is then off: the thresholds are for the whole suite).
// Exit code: 0 when every run passed, 1 when one failed, 2 on a usage error.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TAP = path.join(ROOT, 'node_modules', '.bin', 'tap');

function usage(msg) {
  process.stderr.write(`test:repeat: ${msg}\nusage: npm run test:repeat -- [--times N] [--busy] [--max-minutes M] [--no-build] [test files...]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const a = { times: 10, busy: false, build: true, maxMinutes: undefined, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--times') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) usage(`--times needs a positive integer, got ${argv[i]}`);
      a.times = v;
    } else if (k === '--max-minutes') {
      const v = Number(argv[++i]);
      if (!(v > 0)) usage(`--max-minutes needs a positive number, got ${argv[i]}`);
      a.maxMinutes = v;
    } else if (k === '--busy') a.busy = true;
    else if (k === '--no-build') a.build = false;
    else if (k.startsWith('-')) usage(`unknown option ${k}`);
    else a.files.push(k);
  }
  // A full run takes ~5 minutes on 2 cores, longer when busy: 20 minutes a run is a generous bound.
  a.maxMinutes ??= a.times * 20;
  return a;
}

/**
 * The failing tests of one run, from its TAP output: each leaf `not ok` (an assertion, or a subtest
 * that failed without a failing child, such as a timeout) with its subtest path and YAML details.
 */
export function failures(tap) {
  const lines = tap.split('\n');
  const stack = [];
  const childFailed = [];
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const indent = line.length - line.trimStart().length;
    const level = Math.floor(indent / 4);
    const text = line.trim();
    const sub = /^# Subtest: (.*)$/.exec(text);
    if (sub) {
      stack.length = level;
      stack[level] = sub[1];
      childFailed.length = level;
      childFailed[level] = false;
      continue;
    }
    if (/^Bail out!/.test(text)) {
      out.push({ path: [...stack.slice(0, level), text], details: [] });
      continue;
    }
    const nok = /^not ok \d+ - (.*?)(?: # time=[\d.]+m?s)?$/.exec(text);
    if (!nok) continue;
    const name = nok[1];
    const closesSubtest = stack[level] === name;
    const leaf = !(closesSubtest && childFailed[level]);
    for (let j = 0; j < level; j++) childFailed[j] = true;
    if (!leaf) continue;
    // The YAML block that follows, up to its `...`.
    const details = [];
    if (lines[i + 1]?.trim() === '---') {
      for (let k = i + 2; k < lines.length && lines[k].trim() !== '...'; k++) details.push(lines[k].slice(indent + 2));
    }
    out.push({ path: [...stack.slice(0, level), name], details });
  }
  return out;
}

/** The useful part of an assertion's YAML: the message-like fields, its location, the diff. */
function summarizeDetails(details) {
  const keep = [];
  let inDiff = false;
  for (const d of details) {
    if (/^(found|wanted|compare|message|signal|exitCode|expired|timeout|code|errno|syscall|reason|name|test):/.test(d)) keep.push(d);
    else if (/^ {2}(fileName|lineNumber):/.test(d)) keep.push(d.trim());
    else if (/^diff: /.test(d)) inDiff = true;
    else if (inDiff && /^ {2}[-+@]/.test(d)) keep.push(d);
    else if (inDiff && !/^ {2}/.test(d)) inDiff = false;
  }
  return keep.slice(0, 24);
}

function tapSummary(tap) {
  const m = /^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?.*\}$/m.exec(tap);
  return m ? { total: Number(m[1]), pass: Number(m[2]), fail: Number(m[3] ?? 0) } : undefined;
}

function startBurner(maxMs) {
  // A busy loop that ends by itself at the deadline, should this script die without killing it.
  const code = `const end = Date.now() + ${Math.round(maxMs)}; let x = 0; while (Date.now() < end) { for (let i = 0; i < 1e6; i++) x += i; }`;
  const last = os.cpus().length - 1;
  const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const [cmd, args] = hasTaskset ? ['taskset', ['-c', String(last), process.execPath, '-e', code]] : [process.execPath, ['-e', code]];
  const p = spawn(cmd, args, { stdio: 'ignore' });
  return { proc: p, where: hasTaskset ? `pinned to CPU ${last}` : 'not pinned (no taskset)' };
}

async function runOnce(a, n, logDir) {
  const logFile = path.join(logDir, `run-${n}.tap`);
  const args = ['-R', 'tap', ...(a.files.length > 0 ? ['--disable-coverage', ...a.files] : [])];
  const t0 = Date.now();
  const child = spawn(TAP, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
  const chunks = [];
  const file = fs.createWriteStream(logFile);
  child.stdout.on('data', (c) => {
    chunks.push(c);
    file.write(c);
  });
  child.stderr.on('data', (c) => file.write(c));
  const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
  await new Promise((resolve) => file.end(resolve));
  const tap = Buffer.concat(chunks).toString('utf8');
  return { code, tap, logFile, seconds: (Date.now() - t0) / 1000 };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const out = (s) => process.stdout.write(`${s}\n`);
  if (a.build) {
    out('test:repeat: npm run build');
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) {
      out('test:repeat: the build failed');
      return 1;
    }
  }
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-test-repeat-'));
  const deadline = Date.now() + a.maxMinutes * 60_000;
  let burner;
  if (a.busy) {
    burner = startBurner(a.maxMinutes * 60_000);
    out(`test:repeat: --busy: one CPU burner, pid ${burner.proc.pid}, ${burner.where}, for at most ${a.maxMinutes} min`);
  }
  const stopBurner = () => {
    if (burner && burner.proc.exitCode === null) burner.proc.kill('SIGKILL');
  };
  process.on('exit', stopBurner);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      stopBurner();
      process.exit(130);
    });
  }
  out(`test:repeat: ${a.times} run${a.times === 1 ? '' : 's'} of ${a.files.length > 0 ? a.files.join(' ') : 'the whole suite'}${a.busy ? ', machine busy' : ''}; logs in ${logDir}`);
  let rc = 0;
  for (let n = 1; n <= a.times; n++) {
    if (Date.now() > deadline) {
      out(`test:repeat: stopped before run ${n}: --max-minutes ${a.maxMinutes} reached`);
      rc = 1;
      break;
    }
    const r = await runOnce(a, n, logDir);
    const sum = tapSummary(r.tap);
    const fails = failures(r.tap);
    const counts = sum ? `${sum.pass}/${sum.total} passed` : 'no summary';
    if (r.code === 0 && fails.length === 0) {
      out(`run ${n}/${a.times}: ok, ${counts}, ${r.seconds.toFixed(0)} s`);
      continue;
    }
    out(`run ${n}/${a.times}: FAILED (tap exit ${r.code}), ${counts}, ${r.seconds.toFixed(0)} s; full output: ${r.logFile}`);
    if (fails.length === 0) out('  no failing test in the TAP output (coverage below its threshold, or tap itself failed): see the log');
    for (const f of fails) {
      out(`  not ok: ${f.path.join(' > ')}`);
      for (const d of summarizeDetails(f.details)) out(`      ${d}`);
    }
    rc = 1;
    break;
  }
  stopBurner();
  if (rc === 0) out(`test:repeat: all ${a.times} run${a.times === 1 ? '' : 's'} passed`);
  return rc;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`test:repeat: ${err?.stack ?? String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
