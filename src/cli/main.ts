/**
 * `handoff`: one binary with subcommands (commander). `main(argv)` runs it and exits the process;
 * `runCli(argv, io)` returns the exit code instead (tests).
 *
 * Exit codes: 0 done (a handoff committed), 1 a handoff aborted / nothing to abort / a supervisor
 * failed, 2 usage errors or no supervisor to talk to, 3 another handoff in flight, 130 interrupted.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from '@commander-js/extra-typings';
import { abortCommand, historyCommand, statusCommand, upgradeCommand, type Io } from './commands.js';
import { envName, RUN_OPTIONS, resolveRunSettings } from './config.js';
import { CliError, EXIT } from './errors.js';

export interface CliIo extends Io {
  /** Installs process signal handlers (only for the real process, not in-process tests). */
  signals?: boolean;
}

/** The version in package.json, found by walking up from this file (src/cli or dist/src/cli). */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'handoff-supervisor' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here: one level up.
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

/** A commander error message as one line: `handoff: unknown option '--x' (see 'handoff run --help')`. */
function oneLineError(text: string): string {
  const msg = text
    .replace(/^error:\s*/i, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
  return `handoff: ${msg} (see --help)\n`;
}

const SOCKET_HELP = "the supervisor's admin socket (default: $HANDOFF_ADMIN_SOCKET, else $RUNTIME_DIRECTORY/handoff.sock when set, else the socket of the instance --name names)";

const NAME_HELP = "the instance to talk to, as 'handoff run --name' named it (default: $HANDOFF_NAME, else the only instance running)";

const DURATIONS_HELP = 'Durations: a number with a unit (250ms, 5s, 1.5s, 2m, 1h); a bare number is an error, except 0.';

const RUN_HELP_AFTER = `
Each option can also come from its HANDOFF_* environment variable (shown above) or from the
--config JSON file (keys: the long option names, e.g. "drain-grace": "25s", "listen": ["http=tcp://0.0.0.0:8080"],
and "command": ["/usr/bin/node", "main.js"]). Flags win over the environment, which wins over the
file, which wins over the defaults. In the environment, --listen specs are separated by whitespace
and --allow-exec paths by ':'. ${DURATIONS_HELP}

Signals: SIGHUP starts a handoff to the configured command; SIGTERM or SIGINT stops (the incumbent
drains and exits within its grace, then exit 0); a second SIGINT kills every child at once (exit 130).

Example:
  handoff run --listen http=tcp://127.0.0.1:8080 --lock /var/lib/kv/lock -- node dist/examples/kv/main.js --data /var/lib/kv
`;

const UPGRADE_HELP_AFTER = `
The successor is the supervisor's configured command unless --exec names another program, which
the supervisor must allow (handoff run --allow-exec). Arguments after -- replace the arguments:
  handoff upgrade                                      # same command, same arguments
  handoff upgrade -- main.js --data /srv/kv --build-id v2   # same program, these arguments
  handoff upgrade --exec /opt/kv-v2/bin/kv -- --data /srv/kv
--exec takes a path (a relative one is resolved against your directory) or exactly the
supervisor's own command name. Arguments are passed verbatim: relative paths in them are
relative to the supervisor's working directory.

Progress: phase by phase on a terminal, plain lines otherwise, NDJSON events with --json (the last
line is {"record": ...}). Ctrl-C detaches: the handoff goes on ('handoff abort' stops it).
Exit: 0 committed, 1 aborted (the reason is printed), 2 usage error or no supervisor, 3 another
handoff in flight. ${DURATIONS_HELP}
`;

function buildProgram(io: CliIo, setCode: (n: number) => void): Command {
  const program = new Command('handoff')
    .description('Zero-downtime handoff supervisor for Linux services.')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .enablePositionalOptions()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: (s, write) => write(oneLineError(s)),
    });

  // --- run ---
  const run = program
    .command('run')
    .usage('[options] -- <command> [args...]')
    .description('Run the supervisor: hold the listeners, keep the service serving, hand off on request.')
    .argument('[command...]', 'the service to run and its arguments (after --)')
    .passThroughOptions()
    .option('--config <file>', 'a JSON file of options (default: $HANDOFF_CONFIG, else none)');
  for (const spec of RUN_OPTIONS) {
    const flag = spec.kind === 'bool' ? `--${spec.name}` : `--${spec.name} <${spec.arg ?? 'value'}>`;
    const opt = new Option(flag, `${spec.help} (default: ${spec.defaultText}; env: ${envName(spec.name)})`);
    if (spec.kind === 'list') opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    run.addOption(opt);
  }
  run.addHelpText('after', RUN_HELP_AFTER).action(async (command, _opts, cmd) => {
    const settings = resolveRunSettings(cmd.opts(), command, io.env, io.cwd);
    // Loaded on demand: the client commands do not need the supervisor's code.
    const { runSupervisor } = await import('./run.js');
    setCode(await runSupervisor(settings, io.stderr, () => resolveRunSettings(cmd.opts(), command, io.env, io.cwd)));
  });

  // --- upgrade ---
  program
    .command('upgrade')
    .usage('[options] [-- args...]')
    .description('Ask the running supervisor for a handoff and wait for its outcome (systemd ExecReload=).')
    .argument('[args...]', 'arguments for the successor (after --); default: the configured ones')
    .passThroughOptions()
    .option('--exec <command>', 'run this program as the successor (must be allowed with run --allow-exec)')
    .option('--deadline <duration>', "this handoff's deadline (default: the supervisor's --deadline, 60s unless set)")
    .option('--drain-grace <duration>', "this handoff's drain grace (default: the supervisor's --drain-grace, 25s unless set)")
    .option('--hello-timeout <duration>', "how long this handoff's successor has to say Hello (default: the supervisor's --hello-timeout, 5s unless set)")
    .option('--json', 'print NDJSON events and the final record')
    .option('--admin-socket <path>', SOCKET_HELP)
    .option('--name <name>', NAME_HELP)
    .option('--verbose', 'stack traces with errors')
    .addHelpText('after', UPGRADE_HELP_AFTER)
    .action(async (args, opts) => {
      let detach: (() => void) | undefined;
      if (io.signals) {
        detach = () => {
          io.stderr.write("\nhandoff: detached: the handoff goes on in the supervisor ('handoff abort' stops it)\n");
          process.exit(EXIT.interrupted);
        };
        process.once('SIGINT', detach);
      }
      try {
        setCode(await upgradeCommand(opts, args, io));
      } finally {
        if (detach) process.off('SIGINT', detach);
      }
    });

  // --- status ---
  program
    .command('status')
    .description('Show the incumbent, the listeners, the in-flight handoff and the last outcome.')
    .option('--json', 'print the status as JSON')
    .option('--admin-socket <path>', SOCKET_HELP)
    .option('--name <name>', NAME_HELP)
    .option('--verbose', 'stack traces with errors')
    .action(async (opts) => setCode(await statusCommand(opts, io)));

  // --- abort ---
  program
    .command('abort')
    .description('Abort the in-flight handoff: it rolls back and the incumbent keeps serving. Exit 1 if there is nothing to abort.')
    .option('--reason <text>', 'why (recorded as "operator_abort: <text>")')
    .option('--admin-socket <path>', SOCKET_HELP)
    .option('--name <name>', NAME_HELP)
    .option('--verbose', 'stack traces with errors')
    .action(async (opts) => setCode(await abortCommand(opts, io)));

  // --- history ---
  program
    .command('history')
    .description('List past handoffs, oldest first, with outcome, reason and phase durations.')
    .option('-n, --limit <count>', 'how many of the most recent (default: 10)')
    .option('--json', 'print the records as JSON')
    .option('--admin-socket <path>', SOCKET_HELP)
    .option('--name <name>', NAME_HELP)
    .option('--verbose', 'stack traces with errors')
    .action(async (opts) => setCode(await historyCommand({ ...opts, ...(opts.limit !== undefined ? { n: opts.limit } : {}) }, io)));

  // --- demo ---
  program
    .command('demo')
    .description('The bundled kv example under a real supervisor and load, put through a scenario, with a results table.')
    .option('--scenario <name>', 'upgrade (handoffs to new builds), unhealthy (a build that reports unhealthy, rolled back) or crash (the incumbent is killed) (default: upgrade)')
    .option('--handoffs <count>', 'how many handoffs (crash: crashes) to run (default: 3 for upgrade, 1 otherwise)')
    .option('--clients <count>', 'concurrent clients, four fifths keep-alive (default: 20)')
    .option('--duration <duration>', 'how long the load runs besides the handoffs, e.g. 20s (default: 6s)')
    .option('--port <port>', 'loopback port for the demo service (default: 0, a free port)')
    .option('--keep', 'keep the temporary directory (data, state, log) and print where')
    .option('--json', 'print the report as JSON')
    .option('--verbose', 'stack traces with errors')
    .addHelpText('after', '\nExit: 0 the scenario went as promised, 1 it did not (the temp dir is kept), 2 usage error, 130 interrupted (Ctrl-C stops everything and removes the temp dir).\n')
    .action(async (opts) => {
      const { parseDemoFlags } = await import('./demo/options.js');
      const demoOpts = parseDemoFlags(opts);
      const { runDemo } = await import('./demo/index.js');
      setCode(await runDemo(demoOpts));
    });

  return program;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

/** Runs the CLI and resolves with the exit code; never exits the process itself (except `run`'s forced stop). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const verbose = argv.includes('--verbose') || truthy(io.env['HANDOFF_VERBOSE']);
  let code: number = EXIT.ok;
  const program = buildProgram(io, (n) => (code = n));
  try {
    await program.parseAsync(argv, { from: 'node' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const msg = err instanceof Error ? err.message : String(err);
    io.stderr.write(`handoff: ${msg.split('\n')[0] ?? ''}\n`);
    if (verbose && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    return err instanceof CliError ? err.exitCode : EXIT.failed;
  }
}

export async function main(argv: string[]): Promise<void> {
  const code = await runCli(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd(), signals: true });
  process.exit(code);
}
