// Reads pgjet's native events with a durable pull consumer (npm "nats"):
// after a restart it goes on after the last event it acknowledged, and an
// event delivered again (its ack was lost) is recognised by its Nats-Msg-Id.
//
//   NATS_URL=nats://127.0.0.1:4222 STREAM=PGJET_EVENTS SUBJECT='postgres.public.>' node durable.mjs
import { AckPolicy, connect } from "nats";

const env = (name, def) => process.env[name] || def;
const stream = env("STREAM", "PGJET_EVENTS");
const durable = env("DURABLE", "orders-service");

const nc = await connect({ servers: env("NATS_URL", "nats://127.0.0.1:4222") });
// The server keeps the durable's position: create it once (adding it again
// with the same settings is a no-op), attach to it on every start.
const jsm = await nc.jetstreamManager();
await jsm.consumers.add(stream, {
  durable_name: durable,
  filter_subject: env("SUBJECT", "postgres.>"),
  ack_policy: AckPolicy.Explicit,
  ack_wait: 30e9, // nanoseconds: redelivered if not acked by then
  max_deliver: 10,
});
const consumer = await nc.jetstream().consumers.get(stream, durable);
const messages = await consumer.consume();
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => messages.stop());

// Applied ids. A real service stores the id with its effect, in the same
// database transaction (a unique column), so that a redelivery after a
// crash is skipped too.
const applied = new Set();
for await (const m of messages) {
  const id = m.headers?.get("Nats-Msg-Id");
  if (!applied.has(id)) {
    let ev;
    try {
      ev = m.json();
    } catch (err) {
      console.error(`${m.subject}: ${err.message}`);
      m.term(); // never redeliver what cannot be read
      continue;
    }
    console.log(`${ev.op} ${ev.schema}.${ev.table} key=${JSON.stringify(ev.key)} lsn=${ev.lsn} index=${ev.index}`);
    applied.add(id);
  }
  m.ack();
}
await nc.drain();
