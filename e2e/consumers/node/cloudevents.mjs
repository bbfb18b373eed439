// Reads pgjet's CloudEvents with the CloudEvents SDK (npm "cloudevents"), in
// structured or binary mode alike: the NATS binding names its ce- headers as
// the HTTP binding does, so the SDK's HTTP reader takes the message as it is.
//
//   NATS_URL=nats://127.0.0.1:4222 STREAM=USERS SUBJECT='users.>' node cloudevents.mjs
import { HTTP } from "cloudevents";
import { AckPolicy, connect } from "nats";

const env = (name, def) => process.env[name] || def;
const stream = env("STREAM", "USERS");
const durable = env("DURABLE", "users-cloudevents");

const nc = await connect({ servers: env("NATS_URL", "nats://127.0.0.1:4222") });
const jsm = await nc.jetstreamManager();
await jsm.consumers.add(stream, {
  durable_name: durable,
  filter_subject: env("SUBJECT", "users.>"),
  ack_policy: AckPolicy.Explicit,
});
const messages = await (await nc.jetstream().consumers.get(stream, durable)).consume();
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => messages.stop());

for await (const m of messages) {
  const headers = {};
  for (const [k, v] of m.headers ?? []) headers[k.toLowerCase()] = v[0];
  let ev;
  try {
    ev = HTTP.toEvent({ headers, body: m.string() }); // validates the event
  } catch (err) {
    console.error(`${m.subject}: not a CloudEvent: ${err.message}`);
    m.term();
    continue;
  }
  // ev.id is the event's Nats-Msg-Id: dedupe on it as in durable.mjs.
  console.log(`${ev.type} ${ev.subject} lsn=${ev.pgjetlsn} ${JSON.stringify(ev.data)}`);
  m.ack();
}
await nc.drain();
