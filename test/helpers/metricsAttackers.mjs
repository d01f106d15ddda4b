// Idle and slowloris clients of a /metrics port, in a process of their own (as they would be on
// a network): node metricsAttackers.mjs PORT COUNT. Half sit idle, half send a request's headers
// one byte every 200 ms; each connection the server closes comes back 250 ms later. Every
// 200 ms it prints how many the server has closed so far; SIGTERM ends it.
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
let closedByServer = 0;
let attacking = true;
const sockets = new Set();

function attacker(slow) {
  if (!attacking) return;
  const s = connect(port, '127.0.0.1');
  sockets.add(s);
  s.on('error', () => undefined);
  let timer;
  if (slow) {
    const text = 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(1000);
    let i = 0;
    timer = setInterval(() => i < text.length && s.write(text[i++]), 200);
  }
  s.on('close', () => {
    clearInterval(timer);
    sockets.delete(s);
    if (!attacking) return;
    closedByServer++;
    setTimeout(() => attacker(slow), 250);
  });
}

for (let i = 0; i < count; i++) attacker(i % 2 === 1);
const report = setInterval(() => process.stdout.write(`${closedByServer}\n`), 200);
process.on('SIGTERM', () => {
  attacking = false;
  clearInterval(report);
  for (const s of sockets) s.destroy();
  process.stdout.write(`${closedByServer}\n`, () => process.exit(0));
});
