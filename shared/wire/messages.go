package wire

import "strings"

// Logical decoding messages (pg_logical_emit_message) whose prefix starts
// with ReservedPrefix are pgjet's own. Users' messages (the outbox pattern)
// must use other prefixes.
const ReservedPrefix = "pgjet."

// HeartbeatPrefix marks the collector's heartbeats: transactions written
// into the source database only so that its slot moves while the published
// tables are idle. The collector never stores them in the raw stream.
const HeartbeatPrefix = ReservedPrefix + "heartbeat"

// DDLPrefix marks the messages of DDL capture: an event trigger writes one,
// transactional, for each DDL command, in the command's own transaction.
// Its content is a DDL as JSON. The message travels like any other (a
// change with op message), so consumers see the DDL at its transaction's
// commit position and time, before the changes that follow it.
const DDLPrefix = ReservedPrefix + "ddl"

// IsReserved reports whether a message prefix is pgjet's.
func IsReserved(prefix string) bool { return strings.HasPrefix(prefix, ReservedPrefix) }

// DDL is the content of a DDLPrefix message. When it applied is the commit
// time and position of the transaction carrying it.
type DDL struct {
	// Tag is the command tag, e.g. "ALTER TABLE", "CREATE INDEX", "DROP TABLE".
	Tag string `json:"tag"`
	// Query is the text of the statement as the client sent it
	// (current_query()): a multi-statement string arrives whole, once per
	// DDL command in it.
	Query string `json:"query"`
	// User is the role that ran it (session_user).
	User string `json:"user"`
	// Objects are what the command created, altered or dropped.
	Objects []DDLObject `json:"objects"`
}

// DDLObject is one object a DDL command touched, as the event trigger
// functions pg_event_trigger_ddl_commands and
// pg_event_trigger_dropped_objects describe it.
type DDLObject struct {
	// Type is the object type, e.g. "table", "index", "table column".
	Type string `json:"type"`
	// Schema is the object's schema; empty for objects outside schemas.
	Schema string `json:"schema"`
	// Identity is its qualified name, e.g. "public.orders" or
	// "public.orders.coupon" for a column.
	Identity string `json:"identity"`
	// Dropped is true for objects a DROP (or ALTER ... DROP) removed.
	Dropped bool `json:"dropped"`
}
