// Reads a stream from a sequence or a point in time with an ordered consumer
// (nothing kept on the server, in stream order) and exits once caught up.
//
//   node replay.mjs --from-seq 1
//   node replay.mjs --from-time 2026-12-01T00:00:00Z
import { parseArgs } from "node:util";
import { DeliverPolicy, connect } from "nats";

const { values: args } = parseArgs({
  options: {
    "from-seq": { type: "string" },
    "from-time": { type: "string" },
    stream: { type: "string", default: "PGJET_EVENTS" },
    subject: { type: "string", default: "postgres.>" },
  },
});
const opts = { filterSubjects: args.subject };
if (args["from-time"]) {
  opts.deliver_policy = DeliverPolicy.StartTime;
  opts.opt_start_time = args["from-time"]; // RFC 3339, to the nanosecond
} else if (args["from-seq"]) {
  opts.deliver_policy = DeliverPolicy.StartSequence;
  opts.opt_start_seq = Number(args["from-seq"]);
}

const nc = await connect({ servers: process.env.NATS_URL || "nats://127.0.0.1:4222" });
const consumer = await nc.jetstream().consumers.get(args.stream, opts);
const { num_pending } = await consumer.info();
if (num_pending > 0) {
  const messages = await consumer.consume();
  for await (const m of messages) {
    console.log(`${m.seq} ${new Date(m.info.timestampNanos / 1e6).toISOString()} ${m.subject}`);
    if (m.info.pending === 0) break; // caught up
  }
}
await nc.close();
