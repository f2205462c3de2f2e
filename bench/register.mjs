// `node --import ./bench/register.mjs some.ts` runs a TypeScript file directly (Node 20 cannot strip
// types). It registers the same ts-node ESM loader tap uses for the tests (installed with tap, a dev
// dependency), in transpile-only mode: type checking is `npm run typecheck`'s job, not the runner's.
process.env.TS_NODE_TRANSPILE_ONLY ??= '1';
await import('@isaacs/ts-node-temp-fork-for-pr-2009/import');
