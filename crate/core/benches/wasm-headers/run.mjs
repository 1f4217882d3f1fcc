// Times the exports of the wasm header-chain benchmark (see src/lib.rs): median of 5 runs,
// each printed with its ratio to the sha256d-only baseline measured in the same run.
import { readFileSync } from 'node:fs';
const { instance } = await WebAssembly.instantiate(readFileSync(process.argv[2]));
const e = instance.exports;
const n = 100000;
e.prepare(n);
const time = (f) => { const r = []; for (let i = 0; i < 5; i++) { const t = performance.now(); f(); r.push(performance.now() - t); } r.sort((a, b) => a - b); return r[2]; };
const base = time(e.hash_only), ver = time(e.verify), acc = time(e.accept_each);
for (const [name, ms] of [['sha256d only', base], ['verify_sequence', ver], ['accept each (decode+accept)', acc]])
  console.log(`${name.padEnd(30)} ${ms.toFixed(1)} ms  ${(n / ms * 1000).toFixed(0)} headers/s  ratio ${(ms / base).toFixed(2)}`);
