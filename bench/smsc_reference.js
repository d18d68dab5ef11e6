#!/usr/bin/env node
// The reference of bench/sms: what the SMSC simulator and loopback can take. node-smpp's own
// client binds as a transceiver and pushes N submit_sm (one per destination, GSM text, a receipt
// requested) keeping at most --window unacknowledged, answers every receipt, and prints ONE JSON
// line when all N are accepted and all N receipts are in:
//   {"n":..,"window":..,"seconds":..,"rate":..,"submit_seconds":..,"submit_rate":..,"retried":..}
// `rate` (msg/s) counts from the first submit to the last receipt, the same span as the gateway's
// end-to-end figure; `submit_rate` to the last submit_sm_resp. A submit the SMSC refuses
// (throttled, queue full) is sent again and counted in `retried`.
//
//   node bench/smsc_reference.js --port P --system-id ID --password PW [-n 100000] [--window 100]
'use strict';

const path = require('path');

let smpp;
try {
  smpp = require(path.join(__dirname, '..', 'tests', 'smsc', 'node_modules', 'smpp'));
} catch (err) {
  process.stderr.write('smsc_reference: the npm package smpp is not installed; run `make smsc-sim`\n');
  process.exit(2);
}

function parseArgs(argv) {
  const args = {host: '127.0.0.1', port: null, systemId: null, password: null, n: 100000, window: 100};
  for (let i = 2; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--host') args.host = value;
    else if (key === '--port') args.port = Number(value);
    else if (key === '--system-id') args.systemId = value;
    else if (key === '--password') args.password = value;
    else if (key === '-n' || key === '--n') args.n = Number(value);
    else if (key === '--window') args.window = Number(value);
    else fail(`unknown argument ${key}`);
  }
  if (!args.port || !args.systemId || !args.password) fail('--port, --system-id and --password are required');
  if (!(args.n > 0) || !(args.window > 0)) fail('-n and --window must be positive');
  return args;
}

function fail(message) {
  process.stderr.write(`smsc_reference: ${message}\n`);
  process.exit(2);
}

const args = parseArgs(process.argv);
const session = smpp.connect({host: args.host, port: args.port});
const TIMEOUT_MS = Math.max(60000, args.n * 2);  // generous: a stall is a failure, not a figure

let next = 0;            // the next recipient index to submit
let inFlight = 0;
let accepted = 0;
let receipts = 0;
let retried = 0;
let started = 0;
let submitsDoneAt = 0;
const retry = [];        // recipient indexes refused by the SMSC, to send again

function destination(i) {
  return String(31600000000 + i);  // +316…: one distinct Dutch mobile number per message
}

function pump() {
  while (inFlight < args.window && (retry.length || next < args.n)) {
    const i = retry.length ? retry.shift() : next++;
    inFlight++;
    session.submit_sm({
      source_addr_ton: 5, source_addr_npi: 0, source_addr: 'Burgernet',
      dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: destination(i),
      registered_delivery: 1, data_coding: 0,
      short_message: `Burgernet: referentiebericht ${i}. Ziet u iets? Bel gratis 0800-0011.`,
    }, (pdu) => {
      inFlight--;
      if (pdu.command_status === 0) {
        accepted++;
        if (accepted === args.n) submitsDoneAt = Date.now();
      } else {
        retried++;
        retry.push(i);
      }
      pump();
      finishIfDone();
    });
  }
}

function finishIfDone() {
  if (accepted < args.n || receipts < args.n) return;
  const end = Date.now();
  const seconds = (end - started) / 1000;
  const submitSeconds = (submitsDoneAt - started) / 1000;
  process.stdout.write(JSON.stringify({
    n: args.n, window: args.window, seconds, rate: args.n / seconds,
    submit_seconds: submitSeconds, submit_rate: args.n / submitSeconds, retried,
  }) + '\n');
  session.unbind(() => session.close());
  setTimeout(() => process.exit(0), 100);
}

session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  if (pdu.esm_class & 0x04) {
    receipts++;
    finishIfDone();
  }
});
session.on('error', (err) => fail(`connection error: ${err.message}`));
session.on('close', () => { if (receipts < args.n) fail('the SMSC closed the connection'); });

session.on('connect', () => {
  session.socket.setNoDelay(true);  // small PDUs: do not wait for the peer's delayed ACKs
  session.bind_transceiver({system_id: args.systemId, password: args.password}, (pdu) => {
    if (pdu.command_status !== 0) fail(`bind refused (status 0x${pdu.command_status.toString(16)})`);
    setTimeout(() => fail(`not done after ${TIMEOUT_MS} ms: ${accepted} accepted, ${receipts} receipts`), TIMEOUT_MS).unref();
    started = Date.now();
    pump();
  });
});
