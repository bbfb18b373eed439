package rawstream

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// DiscardsOld says whether a raw stream with c deletes its oldest records
// when a limit is reached, records that routers may not have read yet,
// and what to do about it; "" when it does not. The collector warns at
// start and check warns with the same words.
func DiscardsOld(c jetstream.StreamConfig) (problem, fix string) {
	if c.Discard != jetstream.DiscardOld || c.MaxBytes <= 0 && c.MaxMsgs <= 0 && c.MaxMsgsPerSubject <= 0 {
		return "", ""
	}
	return fmt.Sprintf("raw stream %s discards old records when full (max bytes %d, max msgs %d, max msgs per subject %d): records routers have not read yet are deleted, and routers stop on the gap",
			c.Name, c.MaxBytes, c.MaxMsgs, c.MaxMsgsPerSubject),
		"set discard new (nats stream edit " + c.Name + " --discard new): when full, the collector then waits and Postgres keeps the WAL"
}
