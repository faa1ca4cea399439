/**
 * The package as `npm pack` makes it, which is how a plugin project that does not link a checkout gets
 * Tributary (docs/plugin-authoring.md, A plugin project): what the tarball holds, that what it holds is
 * whole (every import, entry point and source map finds its file), and nothing of the tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, normalize } from 'node:path';

const repo = new URL('../..', import.meta.url).pathname;

interface Manifest {
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as Manifest;

/** The paths `npm pack` would put in the tarball (under `package/`), from this checkout's files and dist/. */
function packedFiles(): { files: Set<string>; size: number; unpackedSize: number } {
  // --ignore-scripts: `prepare` would rebuild dist/, which the test run already built.
  const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const [pack] = JSON.parse(result.stdout) as { files: { path: string }[]; size: number; unpackedSize: number }[];
  return { files: new Set(pack!.files.map((file) => file.path)), size: pack!.size, unpackedSize: pack!.unpackedSize };
}
const packed = packedFiles();
const shipped = [...packed.files];

test('the tarball holds what an installed Tributary runs and documents: entry points, the bin, schemas, docs, the postinstall and its patches', () => {
  const needed = [
    ...Object.values(manifest.exports).flatMap((entry) => [entry.types, entry.default]),
    ...Object.values(manifest.bin),
    'dist/plugins/index.js', // the built-in plugins (core/cli/registry.ts)
    'schemas/pipeline.schema.json', // read at run time (core/config/schema.ts)
    'schemas/pipeline.composed.schema.json',
    'docs/plugin-authoring.md', // named by error messages and the README
    'docs/pipeline-reference.md',
    'docs/operations.md',
    'docs/errors.md',
    'README.md',
    'patches/README.md',
  ].map((path) => normalize(path));
  // postinstall runs in the installed package: its script and the patches it applies must be there.
  const postinstall = /^node (\S+)$/.exec(manifest.scripts['postinstall'] ?? '')?.[1];
  assert.ok(postinstall, `postinstall is "node FILE": ${manifest.scripts['postinstall']}`);
  needed.push(postinstall);
  assert.ok(shipped.some((path) => path.startsWith('patches/') && path.endsWith('.patch')), 'a patch under patches/');
  assert.deepEqual(needed.filter((path) => !packed.files.has(path)), []);
});

test('the tarball holds no tests, benchmarks, integration tests or CI files, and stays small', () => {
  const unwanted = shipped.filter(
    (path) =>
      (/\.test\.(js|d\.ts|js\.map|ts)$/.test(path) && !path.startsWith('examples/plugins/')) || // the example plugins' tests are documentation
      /-test-helpers\.(js|d\.ts|js\.map|ts)$/.test(path) || // what a folder's test files share
      /^(dist\/)?(bench|integration-tests|scripts\/(?!postinstall\.mjs$)|\.ci)\//.test(path) ||
      /^dist\/(examples|scripts)\//.test(path) ||
      /^tsconfig\.json$/.test(path),
  );
  assert.deepEqual(unwanted, []);
  // 2.5 MB packed, 10.6 MB unpacked, 856 files with the tests in; 1.3 MB, 5.0 MB and 373 without; grown with the
  // code and docs to 1.8 MB, 7.1 MB and 421 files by 2026-12-07 (the largest: the GA4 sample a shipped pipeline
  // reads by default, 345 kB). A bound for what slips in by mistake, a tree of tests or data, not for growth.
  assert.ok(packed.unpackedSize < 8_500_000, `unpacked ${packed.unpackedSize} bytes`);
});

/**
 * The specifiers of a compiled module's imports and re-exports (static, side-effect and dynamic with a
 * literal), and of its `new URL('./x.js', import.meta.url)`: statements only, not text that reads like one.
 */
function importSpecifiers(text: string): string[] {
  const patterns = [
    /^\s*(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bnew URL\(\s*['"](\.{1,2}\/[^'"]+\.m?js)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  return patterns.flatMap((pattern) => [...text.matchAll(pattern)].map((match) => match[1]!));
}

test('every relative import of a packed module, and every source of a packed source map, is packed too', () => {
  const missing: string[] = [];
  for (const path of shipped) {
    if (path.endsWith('.js') || path.endsWith('.d.ts')) {
      if (!path.startsWith('dist/')) continue;
      for (const specifier of importSpecifiers(readFileSync(join(repo, path), 'utf8')).filter((name) => name.startsWith('.'))) {
        let target = normalize(join(dirname(path), specifier));
        if (path.endsWith('.d.ts')) target = target.replace(/\.js$/, '.d.ts');
        if (!packed.files.has(target)) missing.push(`${path} imports ${specifier}`);
      }
    } else if (path.endsWith('.js.map')) {
      const map = JSON.parse(readFileSync(join(repo, path), 'utf8')) as { sources: string[] };
      for (const source of map.sources) {
        const target = normalize(join(dirname(path), source));
        if (!packed.files.has(target)) missing.push(`${path} maps to ${source}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

test('every package a packed module imports by name is a dependency (a devDependency is not installed with it)', () => {
  const installed = new Set([...Object.keys(manifest.dependencies), ...Object.keys(manifest.optionalDependencies ?? {}), 'tributary']);
  const undeclared: string[] = [];
  for (const path of shipped.filter((file) => file.startsWith('dist/') && file.endsWith('.js'))) {
    for (const specifier of importSpecifiers(readFileSync(join(repo, path), 'utf8'))) {
      if (specifier.startsWith('.') || isBuiltin(specifier)) continue;
      const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
      if (!installed.has(name)) undeclared.push(`${path} imports ${specifier}`);
    }
  }
  assert.deepEqual(undeclared, []);
});
