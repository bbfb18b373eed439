package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/pgname"
	"github.com/pgjet/pgjet/shared/redact"
	"github.com/pgjet/pgjet/shared/wire"
)

// runCheck is `pgjet-collector check`: every check of Postgres and NATS the
// collector depends on, one report line each. Nothing is created or
// written. Exit 0 when nothing FAILs (warnings allowed), 1 otherwise
// (usage errors exit 2 before it runs: opcheck.Run).
func runCheck(ctx context.Context, cfg config) int {
	r := opcheck.NewReport(os.Stdout)
	fmt.Printf("pgjet-collector check: slot %s, publication %s, source %s, raw stream %s\n", cfg.slot, cfg.publication, cfg.source, cfg.rawStream)
	pg := checkPostgres(ctx, cfg, r)
	checkRawStream(ctx, cfg, r, pg)
	return r.Done()
}

// subcommand runs `pgjet-collector <name>` with the flags (or pipeline file) in args.
func subcommand(name string, args []string, run func(ctx context.Context, cfg config) int) int {
	var cfg config
	return opcheck.Run("pgjet-collector "+name, func() (err error) {
		cfg, err = parseConfig(args)
		return err
	}, func(ctx context.Context) int { return run(ctx, cfg) })
}

// server is what one query tells about the server and the role.
type server struct {
	walLevel, role, roleIdent, version, keepSize, database string
	super, replication, trackCommitTS, recovery            bool
	maxSlots, maxSenders, slots                            int
	current                                                string // current (or replayed) WAL position
}

func readServer(ctx context.Context, conn *pgx.Conn) (server, error) {
	var s server
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_user, quote_ident(current_user), current_setting('server_version'),
		coalesce(current_setting('max_slot_wal_keep_size', true), ''), current_database(),
		r.rolsuper, r.rolreplication, current_setting('track_commit_timestamp') = 'on', pg_is_in_recovery(),
		current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
		(SELECT count(*) FROM pg_replication_slots)::int,
		(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&s.walLevel, &s.role, &s.roleIdent, &s.version, &s.keepSize, &s.database,
		&s.super, &s.replication, &s.trackCommitTS, &s.recovery, &s.maxSlots, &s.maxSenders, &s.slots, &s.current)
	return s, err
}

// slotState is the slot's row of pg_replication_slots and, when a process
// holds it, its walsender's row of pg_stat_replication.
type slotState struct {
	plugin, kind, database, walStatus, confirmed, restart string
	active                                                bool
	pid                                                   *int32
	safeWAL, lag, retained                                *int64
	app, client, state                                    string
	replyTime                                             *time.Time
}

// readSlot returns nil when the slot does not exist.
func readSlot(ctx context.Context, conn *pgx.Conn, name, current string) (*slotState, error) {
	var s slotState
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), slot_type, coalesce(database, ''), active, active_pid,
		coalesce(wal_status, ''), safe_wal_size, coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, ''),
		pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::bigint, pg_wal_lsn_diff($2::pg_lsn, restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, name, current).Scan(&s.plugin, &s.kind, &s.database, &s.active, &s.pid,
		&s.walStatus, &s.safeWAL, &s.confirmed, &s.restart, &s.lag, &s.retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pg_replication_slots: %w", err)
	}
	if s.pid != nil {
		err := conn.QueryRow(ctx, `SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local socket'), coalesce(state, ''), reply_time
			FROM pg_stat_replication WHERE pid = $1`, *s.pid).Scan(&s.app, &s.client, &s.state, &s.replyTime)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read pg_stat_replication: %w", err)
		}
	}
	return &s, nil
}

func (s *slotState) holder() string {
	if s.pid == nil {
		return "held by another process"
	}
	h := fmt.Sprintf("held by pid %d", *s.pid)
	if s.app != "" || s.state != "" {
		h += fmt.Sprintf(" (%s from %s, %s)", s.app, s.client, s.state)
	}
	return h
}

// pgFacts is what the NATS checks need to know of Postgres.
type pgFacts struct {
	connected bool
	sysID     uint64 // 0: unknown
	slot      *slotState
	// From the replication connection: where the collector would resume.
	timeline int32
	database string
	history  []resume.Switch
	// notices the server sent on the check's connection (PostgreSQL 18
	// warns, where 15-17 fail, when a peeked change skips a publication).
	notices []*pgconn.Notice
}

func checkPostgres(ctx context.Context, cfg config, r *opcheck.Report) *pgFacts {
	facts := &pgFacts{}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var conn *pgx.Conn
	pc, err := pgx.ParseConfig(cfg.dsn)
	if err == nil {
		pc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { facts.notices = append(facts.notices, n) }
		conn, err = pgx.ConnectConfig(cctx, pc)
	}
	cancel()
	if err != nil {
		r.Fail(fmt.Sprintf("cannot connect to PostgreSQL at %s (%v)", redact.DSN(cfg.dsn), session.ConnError(err)),
			"check --dsn, that Postgres runs and that pg_hba.conf admits this role; the Postgres checks are skipped")
		return facts
	}
	defer conn.Close(context.Background())
	facts.connected = true
	srv, err := readServer(ctx, conn)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read the server's settings: %v", err), "")
		return facts
	}
	r.OK("connected to PostgreSQL %s at %s, database %s, as role %s", srv.version, redact.DSN(cfg.dsn), srv.database, srv.role)
	if srv.walLevel == "logical" {
		r.OK("wal_level is logical")
	} else {
		r.Fail("wal_level is "+srv.walLevel, "set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart Postgres")
	}
	switch {
	case srv.super:
		r.OK("role %s is a superuser (may replicate; a role with only REPLICATION and SELECT is enough)", srv.role)
	case srv.replication:
		r.OK("role %s has the REPLICATION attribute", srv.role)
	default:
		r.Fail(fmt.Sprintf("role %s has no REPLICATION attribute: it cannot open a replication connection", srv.role),
			fmt.Sprintf("as a superuser run ALTER ROLE %s REPLICATION", srv.roleIdent))
	}
	if srv.super || srv.replication {
		// Without the attribute it would fail for that reason again.
		checkReplicationConn(ctx, cfg, r, facts)
	}
	if srv.maxSenders == 0 || srv.maxSlots == 0 {
		r.Fail(fmt.Sprintf("max_wal_senders is %d and max_replication_slots %d", srv.maxSenders, srv.maxSlots),
			"set both to at least 1 per collector (plus the standbys') in postgresql.conf and restart Postgres")
	}
	checkPublication(ctx, cfg, conn, srv, r)
	checkStream(ctx, cfg, conn, srv, r)
	checkSlot(ctx, cfg, conn, srv, r, facts)
	checkSlotDecodes(ctx, cfg, conn, r, facts)
	checkFailover(ctx, cfg, conn, srv, r)
	return facts
}

// checkReplicationConn opens a replication connection as the collector does
// and identifies the system: pg_hba.conf, the REPLICATION attribute and
// max_wal_senders at once.
func checkReplicationConn(ctx context.Context, cfg config, r *opcheck.Report, facts *pgFacts) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	repl, err := session.ConnectReplication(cctx, cfg.dsn, nil, nil)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot open a replication connection: %v", err),
			"the role needs REPLICATION (ALTER ROLE ... REPLICATION), pg_hba.conf must admit it to this database, and max_wal_senders must have a free sender")
		return
	}
	defer repl.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(cctx, repl)
	if err != nil {
		r.Fail(fmt.Sprintf("replication connection: IDENTIFY_SYSTEM failed: %v", session.ConnError(err)), "")
		return
	}
	fmt.Sscan(sys.SystemID, &facts.sysID)
	facts.timeline, facts.database = sys.Timeline, sys.DBName
	r.OK("replication connection works (system id %s, timeline %d)", sys.SystemID, sys.Timeline)
	if facts.history, err = session.TimelineHistory(cctx, repl, sys.Timeline); err != nil {
		r.Fail(err.Error(), "")
	}
}

// pubTable is one table the collector streams: published, or in --tables.
type pubTable struct {
	name                     string
	ident                    string // relreplident: d, n, f, i
	hasPK, hasIdentIdx, read bool
}

func checkPublication(ctx context.Context, cfg config, conn *pgx.Conn, srv server, r *opcheck.Report) {
	pub := pgx.Identifier{cfg.publication}.Sanitize()
	var exists, all, ins, upd, del, trunc bool
	err := conn.QueryRow(ctx, `SELECT true, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		cfg.publication).Scan(&exists, &all, &ins, &upd, &del, &trunc)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.Fail(fmt.Sprintf("cannot read publication %s: %v", cfg.publication, err), "")
		return
	}
	var idents []string
	for _, t := range cfg.tables {
		// parseConfig has read every name already.
		name, _ := pgname.ParseTable(t, true)
		idents = append(idents, name.Ident())
	}
	switch {
	case !exists && len(cfg.tables) == 0:
		r.Fail(fmt.Sprintf("publication %s does not exist", cfg.publication),
			fmt.Sprintf("create it (CREATE PUBLICATION %s FOR TABLE schema.table, ...) or give --tables so that the collector creates it", pub))
	case !exists:
		r.Warn(fmt.Sprintf("publication %s does not exist", cfg.publication),
			fmt.Sprintf("the collector creates it at start (CREATE PUBLICATION %s FOR TABLE %s), which needs the CREATE privilege on the database and ownership of the tables", pub, strings.Join(idents, ", ")))
	case all:
		r.OK("publication %s publishes all tables", cfg.publication)
	}
	if exists && (!upd || !del || !ins) {
		var ops []string
		for _, o := range []struct {
			on   bool
			name string
		}{{ins, "insert"}, {upd, "update"}, {del, "delete"}, {trunc, "truncate"}} {
			if o.on {
				ops = append(ops, o.name)
			}
		}
		r.Warn(fmt.Sprintf("publication %s publishes only %s: the other changes never reach NATS", cfg.publication, strings.Join(ops, ", ")),
			fmt.Sprintf("if that is not intended: ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')", pub))
	}

	// Configured tables: exist, and in the publication or to be added.
	for i, t := range cfg.tables {
		var found, in bool
		err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, coalesce((SELECT true FROM pg_publication_tables
			WHERE pubname = $2 AND format('%I.%I', schemaname, tablename)::regclass = to_regclass($1)), false)`, idents[i], cfg.publication).Scan(&found, &in)
		switch {
		case err != nil:
			r.Fail(fmt.Sprintf("cannot look up table %s: %v", t, err), "")
		case !found:
			r.Fail(fmt.Sprintf("table %s (--tables) does not exist", t), "create it, or remove it from --tables (spec.source.config.tables)")
		case exists && !in:
			r.Warn(fmt.Sprintf("table %s (--tables) is not in publication %s", t, cfg.publication),
				fmt.Sprintf("the collector adds it at start (ALTER PUBLICATION %s ADD TABLE %s), which needs ownership of the table", pub, idents[i]))
		}
	}

	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname), c.relreplident::text,
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),
		has_table_privilege(c.oid, 'SELECT')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid IN (SELECT format('%I.%I', schemaname, tablename)::regclass FROM pg_publication_tables WHERE pubname = $1
			UNION SELECT to_regclass(t) FROM unnest($2::text[]) t)
		ORDER BY 1`, cfg.publication, idents)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read the published tables: %v", err), "")
		return
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pubTable, error) {
		var t pubTable
		return t, row.Scan(&t.name, &t.ident, &t.hasPK, &t.hasIdentIdx, &t.read)
	})
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read the published tables: %v", err), "")
		return
	}
	if exists && !all {
		names := make([]string, 0, len(tables))
		for _, t := range tables {
			names = append(names, t.name)
		}
		if len(names) > 8 {
			names = append(names[:8], fmt.Sprintf("and %d more", len(names)-8))
		}
		r.OK("publication %s exists: %s", cfg.publication, strings.Join(names, ", "))
	}
	if len(tables) == 0 && exists {
		r.Warn(fmt.Sprintf("publication %s holds no tables: nothing is streamed", cfg.publication),
			fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE schema.table, or give --tables", pub))
	}

	// Replica identity: UPDATE and DELETE on a published table without
	// one fail on the primary, for every application writing it.
	fails := !upd && !del
	bad, counts := 0, map[string]int{}
	var noRead []string
	for _, t := range tables {
		if !t.read {
			noRead = append(noRead, t.name)
		}
		var problem string
		switch {
		case t.ident == "n":
			problem = fmt.Sprintf("table %s has REPLICA IDENTITY NOTHING", t.name)
		case t.ident == "d" && !t.hasPK:
			problem = fmt.Sprintf("table %s has no primary key and REPLICA IDENTITY DEFAULT (no replica identity)", t.name)
		case t.ident == "i" && !t.hasIdentIdx:
			problem = fmt.Sprintf("table %s has REPLICA IDENTITY USING INDEX but the index is gone", t.name)
		default:
			counts[map[string]string{"d": "primary key", "f": "full", "i": "index"}[t.ident]]++
			continue
		}
		bad++
		fix := fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL (or add a primary key: ALTER TABLE %s ADD PRIMARY KEY (...))", t.name, t.name)
		if fails {
			r.Warn(problem+": the publication publishes no updates or deletes, so nothing fails now", fix)
		} else {
			r.Fail(problem+": UPDATE and DELETE on it fail on the primary while it is published", fix)
		}
	}
	if len(tables) > 0 && bad == 0 {
		r.OK("every streamed table has a replica identity (primary key %d, full %d, index %d)", counts["primary key"], counts["full"], counts["index"])
	}
	switch {
	case len(noRead) > 0:
		r.Warn(fmt.Sprintf("role %s has no SELECT on %s: streaming changes does not need it, but Postgres requires it to copy a table's rows (snapshots)", srv.role, strings.Join(noRead, ", ")),
			fmt.Sprintf("GRANT SELECT ON %s TO %s", strings.Join(noRead, ", "), srv.roleIdent))
	case len(tables) > 0:
		r.OK("role %s may SELECT every streamed table", srv.role)
	}
}

func checkSlot(ctx context.Context, cfg config, conn *pgx.Conn, srv server, r *opcheck.Report, facts *pgFacts) {
	s, err := readSlot(ctx, conn, cfg.slot, srv.current)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read slot %s: %v", cfg.slot, err), "")
		return
	}
	facts.slot = s
	switch {
	case s == nil && srv.slots >= srv.maxSlots:
		r.Fail(fmt.Sprintf("slot %s does not exist and all %d replication slots are in use", cfg.slot, srv.maxSlots),
			"raise max_replication_slots (restart), or drop an unused slot (SELECT pg_drop_replication_slot('name'))")
	case s == nil:
		// Whether the raw stream says it was dropped is checked with NATS.
		r.Warn(fmt.Sprintf("slot %s does not exist", cfg.slot), "the collector creates it (pgoutput) at start; it streams the changes committed from then on")
	case s.kind != "logical" || s.plugin != "pgoutput":
		r.Fail(fmt.Sprintf("slot %s is a %s slot with plugin %q: pgjet needs a logical slot with pgoutput", cfg.slot, s.kind, s.plugin), "choose another --slot")
	case s.database != srv.database:
		r.Fail(fmt.Sprintf("slot %s belongs to database %s, not %s", cfg.slot, s.database, srv.database), "choose another --slot or connect --dsn to "+s.database)
	case s.active && s.app != "" && s.app != "pgjet-collector":
		r.Warn(fmt.Sprintf("slot %s is active, %s: not a pgjet-collector", cfg.slot, s.holder()), "another program reads this slot; a collector on it waits (--standby) or fails")
	case s.active:
		r.OK("slot %s (pgoutput) is active, %s", cfg.slot, s.holder())
	default:
		r.Warn(fmt.Sprintf("slot %s (pgoutput) is inactive: no collector reads it, and Postgres keeps all WAL since its restart_lsn", cfg.slot),
			"start the collector; if the slot is abandoned, drop it (SELECT pg_drop_replication_slot('"+cfg.slot+"')) before it fills the disk")
	}
	if s != nil {
		safe := "unlimited (max_slot_wal_keep_size -1)"
		if s.safeWAL != nil {
			safe = opcheck.Bytes(*s.safeWAL)
		}
		switch {
		case checkInvalidated(ctx, cfg, conn, r):
		case s.walStatus == "unreserved":
			r.Warn(fmt.Sprintf("slot %s keeps more WAL than max_wal_size (wal_status unreserved): it loses WAL at the next checkpoint unless the collector catches up (safe_wal_size %s)", cfg.slot, safe),
				"make sure the collector runs and keeps up")
		default:
			r.OK("slot %s wal_status %s, safe_wal_size %s", cfg.slot, s.walStatus, safe)
		}
		if s.lag != nil {
			line := fmt.Sprintf("slot %s lag %s (confirmed_flush %s, current %s; WAL kept since restart_lsn %s: %s)", cfg.slot, opcheck.Bytes(*s.lag), s.confirmed, srv.current, s.restart, opcheck.Bytes(deref(s.retained)))
			if *s.lag > 1<<30 {
				r.Warn(line, "the collector is far behind or stopped: see its log and status")
			} else {
				r.OK("%s", line)
			}
		}
	}
	switch srv.keepSize {
	case "":
		// Before PostgreSQL 13: no such setting.
	case "-1":
		r.Warn("max_slot_wal_keep_size is -1: a stuck or abandoned slot keeps WAL until the disk is full",
			"set max_slot_wal_keep_size in postgresql.conf (e.g. '50GB', below pg_wal's free space) and reload; a slot further behind is then invalidated (wal_status lost) instead, and the collector needs --recreate-slot (or --auto-recreate-slot) and a backfill")
	default:
		r.OK("max_slot_wal_keep_size is %s", srv.keepSize)
	}
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// connectProbe connects to the raw stream's server for check and status:
// the embedded server of a running collector is reached on --listen.
func connectProbe(ctx context.Context, cfg config) (*opcheck.Probe, string, error) {
	p, opt := opcheck.NewProbe()
	nc := cfg.natsConfig(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if cfg.embedded != "" {
		// The running collector's server, as its clients (routers) see it.
		host := strings.Replace(strings.Replace(cfg.listen, "0.0.0.0:", "127.0.0.1:", 1), "[::]:", "[::1]:", 1)
		nc = natsconn.Config{URL: "nats://" + host, Log: nc.Log}
		if cfg.emb != nil {
			nc.User, nc.Password = cfg.emb.cfg.User, cfg.emb.cfg.Password
		}
	}
	nc.Name = "pgjet-collector check"
	nc.Options = append(nc.Options, opt)
	cctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	conn, err := natsconn.Connect(cctx, nc)
	if err != nil {
		return nil, nc.URL, err
	}
	p.NC = conn
	return p, nc.URL, nil
}

// lastRecord is the raw stream's last record of the source.
type lastRecord struct {
	seq        uint64
	stored     time.Time
	source     wire.Source
	commitLSN  uint64
	commitTime time.Time
}

// readLast reads the last raw record of the source; nil when there is none.
func readLast(ctx context.Context, p *opcheck.Probe, stream, source string) (*lastRecord, opcheck.Outcome, error) {
	var resp struct {
		Message struct {
			Seq  uint64    `json:"seq"`
			Data []byte    `json:"data"`
			Time time.Time `json:"time"`
		} `json:"message"`
	}
	apiErr, o, err := p.API(ctx, "STREAM.MSG.GET."+stream, map[string]string{"last_by_subj": wire.RawSubject(source)}, &resp)
	switch {
	case err != nil || o != opcheck.Answered:
		return nil, o, err
	case apiErr != nil && (apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound || apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound):
		return nil, o, nil
	case apiErr != nil:
		return nil, o, apiErr
	}
	var m wire.Message
	if err := wire.Unmarshal(resp.Message.Data, &m); err != nil {
		return nil, o, fmt.Errorf("raw record %d: %w", resp.Message.Seq, err)
	}
	last := &lastRecord{seq: resp.Message.Seq, stored: resp.Message.Time, source: m.Source}
	if len(m.Txs) > 0 {
		tx := m.Txs[len(m.Txs)-1]
		last.commitLSN, last.commitTime = tx.CommitLSN, time.UnixMicro(tx.CommitTime).UTC()
	}
	return last, o, nil
}

func checkRawStream(ctx context.Context, cfg config, r *opcheck.Report, pg *pgFacts) {
	p, url, err := connectProbe(ctx, cfg)
	if err != nil && cfg.embedded != "" {
		r.Warn(fmt.Sprintf("the embedded NATS server at %s is not reachable (%v): the raw stream lives in the collector's process", url, err),
			"start the collector (--embedded) and check again to verify the raw stream")
		return
	}
	if err != nil {
		r.Fail(fmt.Sprintf("cannot connect to NATS: %v", err), "check --nats, the credentials flags, and that nats-server runs")
		return
	}
	defer p.NC.Close()
	r.OK("connected to NATS %s (server %s, max payload %s)", redact.DSN(p.NC.ConnectedUrlRedacted()), p.NC.ConnectedServerVersion(), opcheck.Bytes(p.NC.MaxPayload()))
	var acct jetstream.AccountInfo
	apiErr, o, err := p.API(ctx, "INFO", nil, &acct)
	switch {
	case o != opcheck.Answered:
		r.Fail("JetStream API: "+opcheck.Permission(o, "$JS.API.INFO"), "enable JetStream on the server (jetstream {} in its config) and for this account, and allow publishing to $JS.API.>")
		return
	case err != nil || apiErr != nil:
		r.Fail(fmt.Sprintf("JetStream is not available: %v", errors.Join(err, asErr(apiErr))), "start nats-server with JetStream (-js, or jetstream {} in its config)")
		return
	}
	r.OK("JetStream enabled (account uses %s of storage in %d streams)", opcheck.Bytes(int64(acct.Store)), acct.Streams)

	info, missing, o, err := p.StreamInfo(ctx, cfg.rawStream)
	subj := wire.RawSubject(cfg.source)
	switch {
	case o != opcheck.Answered:
		r.Fail(fmt.Sprintf("raw stream %s: %s", cfg.rawStream, opcheck.Permission(o, "$JS.API.STREAM.INFO."+cfg.rawStream)),
			"allow this user to publish to $JS.API.STREAM.INFO."+cfg.rawStream+" (and $JS.API.STREAM.CREATE, $JS.API.STREAM.MSG.GET of it)")
		return
	case err != nil:
		r.Fail(fmt.Sprintf("raw stream %s: %v", cfg.rawStream, err), "")
		return
	case missing:
		if o := p.MayCreateStream(ctx, cfg.rawStream); o != opcheck.Answered {
			r.Fail(fmt.Sprintf("raw stream %s does not exist, and the collector may not create it: %s", cfg.rawStream, opcheck.Permission(o, "$JS.API.STREAM.CREATE."+cfg.rawStream)),
				"allow publishing to $JS.API.STREAM.CREATE."+cfg.rawStream+", or create the stream (subjects "+wire.RawFilter+", file storage, discard new)")
		} else {
			r.Warn(fmt.Sprintf("raw stream %s does not exist", cfg.rawStream),
				fmt.Sprintf("the collector creates it at start: subjects %s, file storage, R%d, max age %s, duplicate window %s, discard new", wire.RawFilter, cfg.rawReplicas, opcheck.Dur(cfg.rawMaxAge), opcheck.Dur(cfg.rawDupes)))
		}
		if pg.slot == nil && pg.connected {
			r.OK("no raw records of source %s and no slot yet: a fresh start", cfg.source)
		}
		checkRawPublish(ctx, p, subj, false, r)
		return
	}
	c, st := info.Config, info.State
	r.OK("raw stream %s: %s; %d records (%s), seq %d-%d", cfg.rawStream, opcheck.Storage(c), st.Msgs, opcheck.Bytes(int64(st.Bytes)), st.FirstSeq, st.LastSeq)
	covers, others := false, []string{}
	for _, s := range c.Subjects {
		if s == wire.RawFilter || s == subj || (strings.HasSuffix(s, ".>") && strings.HasPrefix(subj, strings.TrimSuffix(s, ">"))) {
			covers = true
		}
		if s != wire.RawFilter && !strings.HasPrefix(s, wire.RawSubjectPrefix) {
			others = append(others, s)
		}
	}
	if !covers {
		r.Fail(fmt.Sprintf("raw stream %s does not capture %s (its subjects: %s)", cfg.rawStream, subj, strings.Join(c.Subjects, ", ")),
			"add "+wire.RawFilter+" to the stream's subjects (nats stream edit "+cfg.rawStream+" --subjects '"+wire.RawFilter+"')")
	}
	if len(others) > 0 {
		r.Fail(fmt.Sprintf("raw stream %s also captures %s: routers refuse it", cfg.rawStream, strings.Join(others, ", ")), "it must hold only "+wire.RawFilter)
	}
	if c.Storage == jetstream.MemoryStorage {
		r.Fail(fmt.Sprintf("raw stream %s uses memory storage: a server restart loses records the slot has already confirmed", cfg.rawStream),
			"recreate it with file storage (delete it while no collector runs; the collector creates it)")
	}
	switch {
	case c.Replicas < 2 && cfg.embedded != "":
		r.OK("raw stream on the embedded server, which fsyncs every write (sync_interval: always)")
	case c.Replicas < 2:
		r.Warn(fmt.Sprintf("raw stream %s has a single replica on an external server: an acknowledged record survives an OS crash only with sync_interval: always, which a client cannot see", cfg.rawStream),
			"check the server's config (deploy/nats/single.conf), or use 3 replicas on a cluster whose nodes run sync_interval: always (deploy/nats/cluster-a.conf)")
	default:
		r.OK("raw stream has %d replicas (a client cannot see the nodes' sync_interval: it must be always, see deploy/nats/cluster-a.conf)", c.Replicas)
	}
	if problem, fix := rawstream.DiscardsOld(c); problem != "" {
		r.Warn(problem, fix)
	}
	if c.MaxBytes > 0 && st.Bytes > uint64(c.MaxBytes)/10*8 {
		r.Warn(fmt.Sprintf("raw stream %s is %d%% full (%s of max %s)", cfg.rawStream, st.Bytes*100/uint64(c.MaxBytes), opcheck.Bytes(int64(st.Bytes)), opcheck.Bytes(c.MaxBytes)),
			"when full the collector stops publishing and Postgres keeps the WAL: raise max bytes or lower the max age")
	}
	age := time.Duration(0)
	if !st.FirstTime.IsZero() && st.Msgs > 0 {
		age = time.Since(st.FirstTime)
	}
	switch {
	case c.MaxAge == 0:
		r.Warn(fmt.Sprintf("raw stream %s has no max age: it grows until its limits or the disk", cfg.rawStream), "set one (--raw-max-age, raw_stream.max_age) longer than any router may be stopped")
	case c.MaxAge < 24*time.Hour:
		r.Warn(fmt.Sprintf("raw stream %s keeps records %s: a router stopped longer loses records (it stops on the gap)", cfg.rawStream, opcheck.Dur(c.MaxAge)), "raise it to cover the longest router outage (default 7d)")
	default:
		oldest := "it is empty"
		if st.Msgs > 0 {
			oldest = "the oldest is " + opcheck.Dur(age) + " old"
		}
		r.OK("raw stream keeps records %s; %s", opcheck.Dur(c.MaxAge), oldest)
	}
	if pg.slot != nil && pg.slot.lag != nil {
		// Records are kept for max age from when they are stored, not
		// committed: a collector far behind still stores them for max age.
		r.OK("max age %s vs slot lag %s: the records of the lag are kept %s from when they are stored", opcheck.Dur(c.MaxAge), opcheck.Bytes(*pg.slot.lag), opcheck.Dur(c.MaxAge))
	}

	last, o, err := readLast(ctx, p, cfg.rawStream, cfg.source)
	switch {
	case o != opcheck.Answered:
		r.Fail("cannot read the last raw record of the source: "+opcheck.Permission(o, "$JS.API.STREAM.MSG.GET."+cfg.rawStream),
			"the collector reads it at every start: allow publishing to $JS.API.STREAM.MSG.GET."+cfg.rawStream)
	case err != nil:
		r.Fail(fmt.Sprintf("cannot read the last raw record of source %s: %v", cfg.source, err), "")
	case last == nil:
		r.OK("no raw records of source %s yet", cfg.source)
	default:
		r.OK("last raw record of source %s: seq %d, commit %s at %s, stored %s", cfg.source, last.seq, pglogrepl.LSN(last.commitLSN), last.commitTime.Format(time.RFC3339Nano), opcheck.Ago(last.stored))
		checkWriter(cfg, pg, last, r)
		if pg.connected && pg.sysID != 0 && pg.slot == nil && !cfg.recreateSlot {
			r.Fail(fmt.Sprintf("slot %s is missing but the raw stream holds records of source %s up to %s: the slot was dropped and the changes committed since are lost to pgjet; the collector refuses to start", cfg.slot, cfg.source, pglogrepl.LSN(last.commitLSN)),
				"start it with --recreate-slot to accept that gap (and resynchronise consumers)")
		}
	}
	checkRawPublish(ctx, p, subj, true, r)
	if o := p.MayCreateStream(ctx, cfg.rawStream); o != opcheck.Answered {
		r.Warn(fmt.Sprintf("the collector may not create stream %s (%s)", cfg.rawStream, opcheck.Permission(o, "$JS.API.STREAM.CREATE."+cfg.rawStream)),
			"fine while it exists; it could not be recreated by the collector")
	} else {
		r.OK("may manage stream %s (stream info, last record and create requests answered; tested with requests the server refuses, nothing was changed)", cfg.rawStream)
	}
}

// checkRawPublish tests the publish permission on the raw subject with a
// message every stream refuses (see opcheck.MayPublish): nothing is stored.
func checkRawPublish(ctx context.Context, p *opcheck.Probe, subj string, streamExists bool, r *opcheck.Report) {
	o, apiErr := p.MayPublish(ctx, subj)
	switch {
	case o == opcheck.NoResponders && !streamExists:
		r.OK("may publish to %s (no stream captures it yet)", subj)
	case o == opcheck.NoResponders:
		r.Fail(fmt.Sprintf("no stream captures %s", subj), "the raw stream's subjects must include "+wire.RawFilter)
	case o != opcheck.Answered:
		r.Fail("cannot publish raw records: "+opcheck.Permission(o, subj), "allow this user to publish to "+wire.RawFilter+" (and subscribe to _INBOX.> for acks)")
	case apiErr.ErrorCode == opcheck.ErrCodeStreamNotMatch:
		r.OK("may publish to %s (tested with a message JetStream refuses by its Nats-Expected-Stream header: nothing was stored)", subj)
	default:
		r.Fail(fmt.Sprintf("publish to %s: %v", subj, apiErr), "")
	}
}

func asErr(e *jetstream.APIError) error {
	if e == nil {
		return nil
	}
	return e
}
