// The browser tier (tests/tiers/browser.sh) runs every test file here, each named as a file.
// Run: node --test tests/browser/unit/*.test.mjs (every file), or name one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

const ROOT = new URL('../../../', import.meta.url);

/** The arguments of the tier's `node --test` commands: files or globs of files, never a directory. */
function tierRuns() {
  const tier = readFileSync(new URL('tests/tiers/browser.sh', ROOT), 'utf8');
  return [...tier.matchAll(/^\s*(?:timeout\b.*?\s)?node --test\b.*$/gm)].map((m) =>
    m[0].split(/\s+/).filter((word) => word.startsWith('tests/')),
  );
}

const matches = (glob, path) =>
  new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`).test(path);

test('the browser tier runs every test file, each named as a file (Node >= 21 takes a directory for a file)', () => {
  const runs = tierRuns();
  assert.equal(runs.length, 2, `one run of the unit tests, one of the browser tests: ${JSON.stringify(runs)}`);
  const args = runs.flat();
  for (const arg of args) assert.match(arg, /\.test\.mjs$/, `${arg} names test files, not a directory`);
  for (const dir of ['tests/browser/unit', 'tests/browser/e2e']) {
    const files = readdirSync(new URL(dir, ROOT)).filter((f) => f.endsWith('.test.mjs'));
    assert.ok(files.length > 0, `${dir} has test files`);
    for (const file of files) {
      const path = `${dir}/${file}`;
      assert.ok(args.some((glob) => matches(glob, path)), `the tier runs ${path}`);
    }
  }
});
