// The page's modules as the browser loads them: index.html preloads every module app.js imports,
// directly or through another, so they are fetched at once, not one level of imports at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const STATIC = new URL('../../../static/', import.meta.url);
const read = (file) => readFileSync(new URL(file, STATIC), 'utf8');

/** The modules `file` imports or re-exports from (static/, relative paths). */
const importsOf = (file) => [...read(file).matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+'\.\/([^']+)';/gm)].map((m) => m[1]);

/** Every module `entry` loads, directly or through another, `entry` not counted. */
function loadedBy(entry) {
  const seen = new Set();
  const visit = (file) => {
    for (const next of importsOf(file)) {
      if (!seen.has(next)) {
        seen.add(next);
        visit(next);
      }
    }
  };
  visit(entry);
  seen.delete(entry);
  return seen;
}

test('index.html preloads every module app.js loads, and nothing else', () => {
  const html = read('index.html');
  assert.match(html, /<script type="module" src="app.js"><\/script>/);
  const preloaded = [...html.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]);
  const loaded = loadedBy('app.js');
  assert.ok(loaded.has('client.js') && loaded.has('timers.js'), `the imports are found: ${[...loaded]}`);
  assert.deepEqual([...preloaded].sort(), [...loaded].sort());
});
