// Reads events of pgjet's debezium envelope the way a consumer written for
// Debezium's PostgreSQL connector does: op, before, after and source of the
// value, the key (Debezium's record key) from the Pgjet-Key header.
//
//   NATS_URL=nats://127.0.0.1:4222 STREAM=DBZ SUBJECT='dbz.>' node debezium.mjs
import { AckPolicy, connect } from "nats";

const env = (name, def) => process.env[name] || def;
const stream = env("STREAM", "DBZ");
const durable = env("DURABLE", "inventory-debezium");

const nc = await connect({ servers: env("NATS_URL", "nats://127.0.0.1:4222") });
const jsm = await nc.jetstreamManager();
await jsm.consumers.add(stream, {
  durable_name: durable,
  filter_subject: env("SUBJECT", "dbz.>"),
  ack_policy: AckPolicy.Explicit,
});
const messages = await (await nc.jetstream().consumers.get(stream, durable)).consume();
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => messages.stop());

for await (const m of messages) {
  const { op, after, source } = m.json(); // schemas off: the value alone
  const key = m.headers?.get("Pgjet-Key"); // e.g. {"id":1}; none for a truncate
  const table = `${source.schema}.${source.table}`;
  if (op === "c" || op === "u" || op === "r") {
    console.log(`upsert ${table} key=${key} after=${JSON.stringify(after)} lsn=${source.lsn}`);
  } else if (op === "d") {
    console.log(`delete ${table} key=${key} lsn=${source.lsn}`);
  } else if (op === "t") {
    console.log(`truncate ${table} lsn=${source.lsn}`);
  }
  m.ack();
}
await nc.drain();
