// ESLint (flat config): `npm run lint`, which CI runs before the tests with --max-warnings 0.
// TypeScript is linted with typescript-eslint's type-checked rules (the types come from
// tsconfig.json through the project service); plain JavaScript (the .mjs fixtures and scripts,
// bin/handoff, this file) with the recommended rules only.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const root = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig(
  { ignores: ['dist/', 'coverage/', '.tap/', 'node_modules/'] },
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs', 'bin/handoff'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Unused names are tsc's job (noUnusedLocals, noUnusedParameters in tsconfig.json); this rule
      // only repeats them. It stays on for plain JavaScript, below, which tsc does not check.
      '@typescript-eslint/no-unused-vars': 'off',
      // tap's `t.test()` returns a promise that tap itself awaits (subtests run in order whether or
      // not the caller awaits them); every other floating promise is still an error.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] }],
      // An async function without an await is how this code base says "returns a promise": a tap
      // subtest ends when its callback's promise settles (a plain callback would need t.end()), and
      // hooks and test doubles implement interfaces that return promises. Promises that are
      // dropped or misused are still errors (no-floating-promises, no-misused-promises).
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', 'bin/handoff'],
    extends: [tseslint.configs.disableTypeChecked],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
