package command

import (
	"fmt"
	"os"
	"slices"

	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/natsconn"
)

// page is the collector's --help and shell completion.
var page = help.Page{
	Name:    "pgjet-collector",
	Summary: "reads a PostgreSQL logical replication slot (pgoutput) and writes the decoded transactions to a raw JetStream stream, confirming the slot only once JetStream has stored them",
	Usage: []string{
		"--config PIPELINE.yaml [--check-config] [flags that override it]",
		"--dsn DSN [--slot NAME] [--publication NAME] [--tables s.t,...] (--nats URL | --embedded DIR [--listen HOST:PORT])",
		"check|status [the same flags]",
		"backfill --table s.t[,...] [--sink ID,...] [--detach] | backfill status [--id ID] [--watch] | backfill cancel --id ID [the same flags]",
		"ddl-capture install|uninstall|sql [--dsn DSN | --config PIPELINE.yaml]",
		"completion bash|zsh",
	},
	Commands: []help.Command{
		{Name: "check", Summary: "check Postgres, the slot, the publication, the raw stream and NATS permissions; change nothing (exit 0: no FAIL)"},
		{Name: "status", Summary: "show the slot, its lag, the raw stream and its durables on one screen"},
		{Name: "backfill", Summary: "re-send tables while changes stream (an online snapshot); status: progress of every snapshot and backfill; cancel (backfill -h)"},
		{Name: "ddl-capture", Summary: "install|uninstall|sql: event triggers that write each DDL command as a pgjet.ddl logical message (ddl-capture -h)"},
		help.CompletionCommand,
	},
	Groups: []help.Group{
		{Title: "Pipeline file", Flags: []string{"config", "check-config"}},
		{Title: "Postgres", Flags: []string{"dsn", "slot", "publication", "tables", "source", "standby", "failover", "recreate-slot", "auto-recreate-slot", "take-over-source",
			"heartbeat", "heartbeat-query", "heartbeat-dsn", "replication-timeout"}},
		{Title: "Snapshots and backfills", Flags: []string{"snapshot-mode", "snapshot-tables", "snapshot-chunk-rows", "snapshot-parallel",
			"snapshot-bucket", "backfill-auto", "backfill-sql"}},
		{Title: "NATS and its authentication", Flags: append([]string{"nats"}, natsconn.FlagNames...)},
		{Title: "Embedded JetStream server", Flags: []string{"embedded", "listen", "embedded-user", "embedded-password", "embedded-password-file",
			"embedded-nkeys", "embedded-accounts", "embedded-account", "embedded-allow-unauthenticated", "embedded-tls-cert", "embedded-tls-key",
			"embedded-tls-ca", "embedded-domain", "embedded-leaf", "embedded-leaf-creds", "embedded-leaf-user", "embedded-leaf-password",
			"embedded-leaf-password-file", "embedded-leaf-tls-ca", "embedded-leaf-tls-cert", "embedded-leaf-tls-key"}},
		{Title: "Raw stream and batching", Flags: []string{"raw-stream", "raw-max-age", "raw-duplicate-window", "raw-replicas", "linger",
			"ack-timeout", "max-queue-bytes", "max-message-bytes", "max-message-changes"}},
		{Title: "Operations", Flags: []string{"metrics", "log-level", "log-format", "memory-limit"}},
	},
	Notes: []string{
		"Every flag can also be given as PGJET_<NAME> in the environment (shown in brackets); a flag on the command line wins.\n" +
			"Give secrets in files (--nats-password-file, --nats-token-file) or the environment, not as arguments: they show in process listings.",
	},
	Files: append([]string{"config", "embedded", "embedded-password-file", "embedded-accounts", "embedded-tls-cert", "embedded-tls-key",
		"embedded-tls-ca", "embedded-leaf-creds", "embedded-leaf-password-file", "embedded-leaf-tls-ca", "embedded-leaf-tls-cert",
		"embedded-leaf-tls-key"}, natsconn.FileFlags...),
	Choices: map[string][]string{"log-level": {"debug", "info", "warn", "error"}, "log-format": {"text", "json"}},
}

// completionMain prints the completion script: `completion bash|zsh`.
func completionMain(args []string) int {
	var c config
	fs, _, _, _ := c.flagSet()
	if len(args) != 1 || !slices.Contains([]string{"bash", "zsh"}, args[0]) {
		fmt.Fprintf(os.Stderr, "%s completion: give the shell: bash or zsh\n", page.Name)
		return 2
	}
	if err := page.Completion(os.Stdout, fs, args[0]); err != nil {
		fmt.Fprintf(os.Stderr, "%s completion: %v\n", page.Name, err)
		return 2
	}
	return 0
}
