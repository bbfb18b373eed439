package pipeline

import "time"

// Heartbeat is spec.source.config.heartbeat: small transactions the
// collector writes into the source database so that its slot moves while
// the published tables are idle and other databases write.
type Heartbeat struct {
	// Interval between heartbeats; 0 (the default): none.
	Interval time.Duration
	// Query, when set, is run instead of writing a pgjet.heartbeat
	// message (an action query, e.g. an UPDATE of a published table).
	Query string
	// DSN is where heartbeats are written; default the source's DSN. Name
	// the primary when the source DSN is a standby. May hold a password.
	DSN string
}

// sourceLiveness reads the source's heartbeat and replication_timeout.
func (d *decoder) sourceLiveness(c *mapReader, src *Source) {
	d.duration(c, "replication_timeout", &src.ReplicationTimeout)
	n, p := c.get("heartbeat")
	if n == nil {
		return
	}
	m := d.mapping(n, p)
	d.duration(m, "interval", &src.Heartbeat.Interval)
	d.text(m, "query", &src.Heartbeat.Query)
	d.text(m, "dsn", &src.Heartbeat.DSN)
	if in, ip := m.get("interval"); in == nil && m.ok {
		d.add(ip, "is required: how often to write a heartbeat, e.g. 30s")
	}
	m.rest(nil)
}
