package command

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/resume"
	"github.com/pgjet/pgjet/shared/opcheck"
	"github.com/pgjet/pgjet/shared/wire"
)

// Failover (PostgreSQL 17+): a standby keeps a copy of a failover slot
// (sync_replication_slots), so that after a promotion the collector
// resumes on the new primary. What check reads on the primary and on every
// other host the DSN names is what docs/postgres.md's recipe sets.

// standbyInfo is a physical standby connected to the primary.
type standbyInfo struct {
	app, client, state string
}

// checkFailover reports the slot's failover state, synchronized_standby_slots
// and, when the slot fails over, the settings of each standby the DSN names.
func checkFailover(ctx context.Context, cfg config, conn *pgx.Conn, srv server, r *opcheck.Report) {
	if srv.recovery {
		return // a standby: the collector needs the primary, said elsewhere
	}
	major, err := pgsetup.ServerMajor(ctx, conn)
	if err != nil {
		r.Fail(err.Error(), "")
		return
	}
	standbys, err := physicalStandbys(ctx, conn)
	if err != nil {
		r.Fail(fmt.Sprintf("cannot read pg_stat_replication: %v", err), "")
		return
	}
	if major < pgsetup.FailoverVersion {
		switch {
		case cfg.failover:
			r.Fail(fmt.Sprintf("--failover (source.config.failover) needs PostgreSQL %d or later, this server is %d", pgsetup.FailoverVersion, major),
				"drop the option, or upgrade")
		case len(standbys) > 0:
			r.Warn(fmt.Sprintf("%d standby(s) replicate this server, but before PostgreSQL %d a standby keeps no copy of slot %s: after a promotion the collector stops (slot missing)", len(standbys), pgsetup.FailoverVersion, cfg.slot),
				"after a promotion: --recreate-slot on the new primary ("+gapBackfill(cfg)+"); or upgrade to 17+ and use --failover")
		}
		return
	}

	var failover, temporary, exists bool
	err = conn.QueryRow(ctx, `SELECT true, failover, temporary FROM pg_replication_slots WHERE slot_name = $1`, cfg.slot).Scan(&exists, &failover, &temporary)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.Fail(fmt.Sprintf("cannot read slot %s: %v", cfg.slot, err), "")
		return
	}
	switch {
	case exists && temporary:
		r.Warn(fmt.Sprintf("slot %s is temporary: it is dropped when its session ends", cfg.slot), "drop it; the collector creates a permanent slot")
	case exists && failover:
		r.OK("slot %s is a failover slot (failover true, temporary false): standbys with sync_replication_slots keep a copy", cfg.slot)
	case cfg.failover:
		r.OK("--failover: the collector makes slot %s a failover slot at start", cfg.slot)
	case len(standbys) > 0:
		r.Warn(fmt.Sprintf("%d standby(s) replicate this server, but slot %s is not a failover slot: after a promotion it is missing on the new primary and the collector stops", len(standbys), cfg.slot),
			"start the collector with --failover (source.config.failover: true) and set up the standby as docs/postgres.md says")
	}
	fails := failover || cfg.failover
	if !fails {
		return
	}
	checkStandbySlots(ctx, conn, r)
	checkStandbyHosts(ctx, cfg, r, len(standbys))
}

// physicalStandbys lists the walsenders of physical standbys: those not
// connected to a database.
func physicalStandbys(ctx context.Context, conn *pgx.Conn) ([]standbyInfo, error) {
	rows, err := conn.Query(ctx, `SELECT coalesce(r.application_name, ''), coalesce(r.client_addr::text, 'local socket'), coalesce(r.state, '')
		FROM pg_stat_replication r JOIN pg_stat_activity a ON a.pid = r.pid WHERE a.datname IS NULL`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (standbyInfo, error) {
		var s standbyInfo
		return s, row.Scan(&s.app, &s.client, &s.state)
	})
}

// checkStandbySlots reports synchronized_standby_slots: without it, the
// collector may store transactions a promoted standby never received
// (phantoms); with a slot that does not exist or is not a live physical
// slot, logical replication waits.
func checkStandbySlots(ctx context.Context, conn *pgx.Conn, r *opcheck.Report) {
	var setting string
	if err := conn.QueryRow(ctx, `SELECT current_setting('synchronized_standby_slots')`).Scan(&setting); err != nil {
		r.Fail(fmt.Sprintf("cannot read synchronized_standby_slots: %v", err), "")
		return
	}
	if strings.TrimSpace(setting) == "" {
		r.Warn("synchronized_standby_slots is empty: the collector may store transactions a standby has not received yet; after its promotion they are phantoms (logged, counted and published as "+wire.NoticePrefix+wire.NoticePhantoms+")",
			"name the standbys' physical slots: ALTER SYSTEM SET synchronized_standby_slots = 'standby_slot'; SELECT pg_reload_conf()")
		return
	}
	for _, name := range strings.Split(setting, ",") {
		name = strings.TrimSpace(name)
		var kind string
		var active bool
		err := conn.QueryRow(ctx, `SELECT slot_type, active FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&kind, &active)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			r.Fail(fmt.Sprintf("synchronized_standby_slots names slot %s, which does not exist: logical replication (the collector) waits for it for ever", name),
				"on a promoted server clear it until it has a standby of its own: ALTER SYSTEM SET synchronized_standby_slots = ''; SELECT pg_reload_conf(); else create the standby's slot")
		case err != nil:
			r.Fail(fmt.Sprintf("cannot read slot %s: %v", name, err), "")
		case kind != "physical":
			r.Fail(fmt.Sprintf("synchronized_standby_slots names slot %s, a %s slot: only physical slots count", name, kind),
				"name the standbys' physical slots (primary_slot_name on each standby)")
		case !active:
			r.Warn(fmt.Sprintf("synchronized_standby_slots names physical slot %s, which no standby uses now: logical replication waits until it is back", name),
				"start the standby, or remove the slot from synchronized_standby_slots while it is down")
		default:
			r.OK("synchronized_standby_slots: physical slot %s is in use by a standby (logical replication never gets ahead of it)", name)
		}
	}
}

// checkStandbyHosts connects to every other host the DSN names and checks
// what a standby needs to keep a usable copy of the slot.
func checkStandbyHosts(ctx context.Context, cfg config, r *opcheck.Report, standbys int) {
	pc, err := pgconn.ParseConfig(cfg.dsn)
	if err != nil {
		return // reported by the connection checks
	}
	hosts := append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port, TLSConfig: pc.TLSConfig}}, pc.Fallbacks...)
	seen := map[string]bool{}
	var distinct []*pgconn.FallbackConfig
	for _, h := range hosts {
		// One entry per host and port: TLS modes make several.
		key := fmt.Sprintf("%s:%d", h.Host, h.Port)
		if !seen[key] {
			seen[key] = true
			distinct = append(distinct, h)
		}
	}
	if len(distinct) < 2 {
		if standbys > 0 {
			r.Warn("--dsn names one host: after a promotion the collector cannot reach the new primary",
				"name every host and ask for the writable one, e.g. host=primary,standby target_session_attrs=read-write (or postgres://primary,standby/db?target_session_attrs=read-write)")
		}
		return
	}
	if pc.RuntimeParams["target_session_attrs"] != "read-write" && pc.RuntimeParams["target_session_attrs"] != "primary" {
		r.Fail("--dsn names several hosts without target_session_attrs=read-write: the collector may connect to a standby",
			"add target_session_attrs=read-write to --dsn")
	}
	for _, h := range distinct {
		checkStandbyHost(ctx, cfg, pc, h, r)
	}
}

func checkStandbyHost(ctx context.Context, cfg config, base *pgconn.Config, h *pgconn.FallbackConfig, r *opcheck.Report) {
	where := fmt.Sprintf("%s:%d", h.Host, h.Port)
	c := base.Copy()
	c.Host, c.Port, c.TLSConfig, c.Fallbacks = h.Host, h.Port, h.TLSConfig, nil
	c.ValidateConnect = nil
	delete(c.RuntimeParams, "target_session_attrs")
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, pgxConfig(c))
	if err != nil {
		r.Warn(fmt.Sprintf("host %s (in --dsn) is not reachable now (%s): its failover settings are unchecked", where, shortPgErr(err)), "")
		return
	}
	defer conn.Close(context.Background())
	var recovery bool
	if err := conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil {
		r.Warn(fmt.Sprintf("host %s: %v", where, err), "")
		return
	}
	if !recovery {
		return // the primary
	}
	var syncSlots, feedback, slotName string
	err = conn.QueryRow(cctx, `SELECT current_setting('sync_replication_slots', true), current_setting('hot_standby_feedback'),
		current_setting('primary_slot_name')`).Scan(&syncSlots, &feedback, &slotName)
	if err != nil {
		r.Warn(fmt.Sprintf("standby %s: cannot read its settings: %v", where, err), "")
		return
	}
	var missing []string
	if syncSlots != "on" {
		missing = append(missing, "sync_replication_slots = on")
	}
	if feedback != "on" {
		missing = append(missing, "hot_standby_feedback = on")
	}
	if slotName == "" {
		missing = append(missing, "primary_slot_name = '<its physical slot on the primary>'")
	}
	var conninfo string
	if err := conn.QueryRow(cctx, `SELECT current_setting('primary_conninfo')`).Scan(&conninfo); err != nil {
		r.Warn(fmt.Sprintf("standby %s: cannot read primary_conninfo (%v): it must name dbname for slot synchronization", where, shortPgErr(err)),
			"grant pg_read_all_settings to the collector's role, or check primary_conninfo by hand")
	} else if !namesDatabase(conninfo) {
		missing = append(missing, "dbname=<database> in primary_conninfo")
	}
	if len(missing) > 0 {
		r.Fail(fmt.Sprintf("standby %s lacks what slot synchronization needs: %s", where, strings.Join(missing, ", ")),
			"set them in the standby's postgresql.conf (ALTER SYSTEM SET ...) and reload it (docs/postgres.md, failover)")
	} else {
		r.OK("standby %s: sync_replication_slots on, hot_standby_feedback on, primary_slot_name %s, primary_conninfo names a database", where, slotName)
	}
	var synced, temporary bool
	var confirmed string
	err = conn.QueryRow(cctx, `SELECT synced, temporary, coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1`, cfg.slot).Scan(&synced, &temporary, &confirmed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.Warn(fmt.Sprintf("standby %s has no copy of slot %s yet: a promotion now loses the slot", where, cfg.slot),
			"wait for the slot sync worker (it copies failover slots every few seconds once the settings above are right)")
	case err != nil:
		r.Warn(fmt.Sprintf("standby %s: cannot read its slots: %v", where, err), "")
	case temporary || !synced:
		r.Warn(fmt.Sprintf("standby %s: its copy of slot %s is not sync-ready yet (synced %v, temporary %v): a promotion now drops it", where, cfg.slot, synced, temporary),
			"wait until the standby has replayed past the slot's position on the primary (usually seconds, or a checkpoint's time)")
	default:
		r.OK("standby %s has a synced copy of slot %s (synced true, temporary false, confirmed_flush %s)", where, cfg.slot, confirmed)
	}
}

// pgxConfig is a pgx connection config around c.
func pgxConfig(c *pgconn.Config) *pgx.ConnConfig {
	cfg, _ := pgx.ParseConfig("")
	cfg.Config = *c
	return cfg
}

// namesDatabase reports whether a conninfo (key=value or URI) names a
// database, without keeping or showing it (it may hold a password).
func namesDatabase(conninfo string) bool {
	s := strings.TrimSpace(conninfo)
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		return err == nil && (strings.Trim(u.Path, "/") != "" || u.Query().Get("dbname") != "")
	}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "dbname" && strings.Trim(v, "'") != "" {
			return true
		}
	}
	return false
}

func shortPgErr(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return err.Error()
}

// checkWriter reports whose records the raw stream holds of the source: a
// collector refuses to start when another slot or database wrote them, or
// a timeline this server does not descend from.
func checkWriter(cfg config, pg *pgFacts, last *lastRecord, r *opcheck.Report) {
	if pg.sysID == 0 {
		return
	}
	this := wire.Source{Name: cfg.source, SystemID: pg.sysID, Timeline: pg.timeline, Database: pg.database, Slot: cfg.slot}
	plan, err := resume.Decide(&resume.Stored{Source: last.source, Last: wire.Position{CommitLSN: last.commitLSN, Final: true}}, this, pg.history, cfg.takeOver)
	var we *resume.WriterError
	var te *resume.TimelineError
	switch {
	case errors.As(err, &we):
		r.Fail(fmt.Sprintf("source %s is written by another collector (its last raw record comes from slot %q of database %q on system %d): the collector refuses to start", cfg.source, last.source.Slot, last.source.Database, last.source.SystemID),
			fmt.Sprintf("give this collector its own --source, or, if it replaces the other one, start it once with %s", resume.TakeOverFlag))
	case errors.As(err, &te):
		r.Fail(te.Error(), "")
	case err != nil:
		r.Fail(err.Error(), "")
	case plan.Phantoms != nil:
		r.Warn(fmt.Sprintf("after a failover: %s; the collector reports them at start and resumes at the fork", plan.Phantoms),
			"")
	case last.source.Timeline != this.Timeline && last.source.SystemID == this.SystemID:
		r.OK("the raw stream's records of source %s are of timeline %d, this server is on timeline %d: common history up to %s, nothing lost", cfg.source, last.source.Timeline, this.Timeline, pglogrepl.LSN(last.commitLSN))
	default:
		r.OK("source %s is written by slot %s of this database", cfg.source, cfg.slot)
	}
}
