#!/usr/bin/env node
// Kannel's load for bench/sms: N messages through Kannel's HTTP sendsms, --concurrency requests
// at a time (keep-alive), each asking for its final delivery report (dlr-mask 3: delivered or
// failed) at a dlr-url on a sink this script serves. Prints ONE JSON line when all N reports are
// in:  {"n":..,"seconds":..,"rate":..,"accepted_seconds":..,"delivered":..,"failed":..,"refused":..}
// `rate` (msg/s) counts from the first request to the last report, the same span as the
// gateway's end-to-end figure; `accepted_seconds` until smsbox had accepted the last request.
//
//   node bench/kannel.js --sendsms-port P --user U --password PW [-n 100000] [--concurrency 64]
'use strict';

const http = require('http');

function parseArgs(argv) {
  const args = {port: null, user: null, password: null, n: 100000, concurrency: 64, timeout: 600};
  for (let i = 2; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--sendsms-port') args.port = Number(value);
    else if (key === '--user') args.user = value;
    else if (key === '--password') args.password = value;
    else if (key === '-n') args.n = Number(value);
    else if (key === '--concurrency') args.concurrency = Number(value);
    else if (key === '--timeout') args.timeout = Number(value);
    else fail(`unknown argument ${key}`);
  }
  if (!args.port || !args.user || !args.password) fail('--sendsms-port, --user and --password are required');
  return args;
}

function fail(message) {
  process.stderr.write(`kannel.js: ${message}\n`);
  process.exit(2);
}

const args = parseArgs(process.argv);
let delivered = 0, failed = 0, refused = 0, accepted = 0, started = 0, acceptedAt = 0;

function finish() {
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(JSON.stringify({
    n: args.n, seconds, rate: args.n / seconds, accepted_seconds: (acceptedAt - started) / 1000,
    delivered, failed, refused,
  }) + '\n');
  process.exit(0);
}

// The sink: Kannel's smsbox calls it once per final report, type 1 (delivered) or 2 (failed).
const sink = http.createServer((req, res) => {
  const type = new URL(req.url, 'http://sink').searchParams.get('type');
  if (type === '1') delivered++;
  else if (type === '2') failed++;
  res.end('');
  if (delivered + failed >= args.n) finish();
});
sink.keepAliveTimeout = 60000;

sink.listen(0, '127.0.0.1', () => {
  const dlrUrl = `http://127.0.0.1:${sink.address().port}/dlr?type=%d`;
  const agent = new http.Agent({keepAlive: true, maxSockets: args.concurrency});
  let next = 0;
  started = Date.now();
  setTimeout(() => fail(`timed out: ${delivered + failed} of ${args.n} reports`), args.timeout * 1000).unref();

  function sendNext() {
    if (next < args.n) request(next++);
  }

  function request(i) {
    const query = new URLSearchParams({
      username: args.user, password: args.password, to: '+316' + String(10000000 + i).slice(-8),
      from: 'Burgernet', text: `Burgernet: bench message ${i}`, 'dlr-mask': '3', 'dlr-url': dlrUrl,
    });
    http.get({host: '127.0.0.1', port: args.port, path: '/cgi-bin/sendsms?' + query, agent}, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 202 || res.statusCode === 200) {
          if (++accepted === args.n) acceptedAt = Date.now();
          sendNext();
        } else {  // smsbox refused it (its queue full …): the same message again, a moment later
          refused++;
          setTimeout(() => request(i), 10);
        }
      });
    }).on('error', (err) => fail(`sendsms: ${err.message}`));
  }

  for (let k = 0; k < args.concurrency; k++) sendNext();
});
