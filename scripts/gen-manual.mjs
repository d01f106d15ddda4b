// Writes man/ctpurge.8 and completion/ctpurge.bash from the built option table (npm run build
// first). A unit test fails when the shipped files differ from what this writes.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bashCompletion, manPage } from '../dist/cli/manual.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
mkdirSync(path.join(root, 'man'), { recursive: true });
mkdirSync(path.join(root, 'completion'), { recursive: true });
writeFileSync(path.join(root, 'man/ctpurge.8'), manPage(version));
writeFileSync(path.join(root, 'completion/ctpurge.bash'), bashCompletion());
console.log('wrote man/ctpurge.8 and completion/ctpurge.bash');
