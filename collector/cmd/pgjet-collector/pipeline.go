package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/pipeline"
)

// applyFile sets every flag the user did not give (on the command line or in
// the environment) from the pipeline file's source, raw_stream and batch
// sections. tables is the --tables flag's value.
func (c *config) applyFile(given map[string]bool, tables *string) error {
	f, err := pipeline.Load(c.file, os.LookupEnv)
	var errs *pipeline.Errors
	if errors.As(err, &errs) {
		if errs = errs.For(pipeline.ScopeCollector); errs.Len() > 0 {
			return fmt.Errorf("%s:\n%w", c.file, errs)
		}
	} else if err != nil {
		return err
	}
	c.compat = f.Compat
	set := func(flag string, apply func()) {
		if !given[flag] {
			apply()
		}
	}
	src := f.Source
	set("dsn", func() { c.dsn = src.DSN })
	set("slot", func() { c.slot = src.Slot })
	set("publication", func() { c.publication = src.Publication })
	set("tables", func() { *tables = strings.Join(src.Tables, ",") })
	set("source", func() { c.source = src.ID })
	set("failover", func() { c.failover = src.Failover })

	raw := f.RawStream
	if raw.Embedded != nil && !given["nats"] {
		set("embedded", func() { c.embedded = raw.Embedded.Dir })
		set("listen", func() { c.listen = raw.Embedded.Listen })
		c.emb.applyFile(given, raw.Embedded)
	} else if !given["embedded"] {
		conn, _ := f.RawConn()
		c.natsBase = conn.NATS()
		set("nats", func() { c.natsURL = c.natsBase.URL })
	}
	set("raw-stream", func() { c.rawStream = raw.Name })
	set("raw-max-age", func() { c.rawMaxAge = raw.MaxAge })
	set("raw-duplicate-window", func() { c.rawDupes = raw.DuplicateWindow })
	set("raw-replicas", func() { c.rawReplicas = raw.Replicas })
	if ms := f.Batch.MaxMS; ms != nil {
		set("linger", func() { c.linger = time.Duration(*ms) * time.Millisecond })
	}
	set("max-message-changes", func() { c.maxChanges = f.Batch.MaxEvents })
	set("metrics", func() { c.metrics = f.Metrics.Listen })
	return nil
}

// natsConfig is the raw stream's connection: the pipeline file's, with the
// URL and the authentication flags given instead.
func (c *config) natsConfig(log *slog.Logger) natsconn.Config {
	nc := c.natsBase
	nc.URL, nc.Name, nc.Log = c.natsURL, "pgjet-collector", log
	if len(c.auth.Given()) > 0 {
		nc = c.auth.Apply(nc)
	}
	return nc
}
