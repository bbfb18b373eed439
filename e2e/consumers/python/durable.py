# Reads pgjet's native events with a durable pull consumer (nats-py): after a
# restart it goes on after the last event it acknowledged, and an event
# delivered again (its ack was lost) is recognised by its Nats-Msg-Id.
#
#   pip install nats-py==2.16.0
#   NATS_URL=nats://127.0.0.1:4222 STREAM=PGJET_EVENTS SUBJECT='postgres.public.>' python3 durable.py
import asyncio
import json
import os

import nats
from nats.errors import TimeoutError


async def main():
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        os.environ.get("SUBJECT", "postgres.>"),
        durable=os.environ.get("DURABLE", "orders-service"),
        stream=os.environ.get("STREAM", "PGJET_EVENTS"),
    )
    # Applied ids. A real service stores the id with its effect, in the same
    # database transaction (a unique column), so that a redelivery after a
    # crash is skipped too.
    applied = set()
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=5)
            except TimeoutError:
                continue
            for m in msgs:
                msg_id = m.headers.get("Nats-Msg-Id") if m.headers else None
                if msg_id not in applied:
                    ev = json.loads(m.data)
                    print(f"{ev['op']} {ev['schema']}.{ev['table']} key={json.dumps(ev['key'])} "
                          f"lsn={ev['lsn']} index={ev['index']}")
                    applied.add(msg_id)
                await m.ack()
    finally:
        await nc.drain()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
