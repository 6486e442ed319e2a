#!/usr/bin/env node
// The registry this project installs from serves only some platform builds of
// msgpackr's optional native helper, so `npm install` leaves the others out of
// package-lock.json and `npm ci` then refuses the lock. This adds them back as optional
// entries for other platforms (never fetched here). Run after `npm install` changes the lock.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const extract = lock.packages['node_modules/msgpackr-extract'];
if (extract === undefined) process.exit(0);
let added = 0;
for (const [name, version] of Object.entries(extract.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key] !== undefined) continue;
  const [, os, cpu] = /msgpackr-extract-(\w+)-(\w+)$/.exec(name) ?? [];
  lock.packages[key] = { version, cpu: [cpu], license: 'MIT', optional: true, os: [os] };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} optional platform entries`);
