package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/collector/internal/ddlcapture"
	"github.com/pgjet/pgjet/collector/internal/session"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/pipeline"
	"github.com/pgjet/pgjet/shared/redact"
)

const ddlUsage = `Usage: pgjet-collector ddl-capture install|uninstall|sql [--dsn DSN | --config PIPELINE.yaml]

Installs (or removes) DDL capture in the source database: event triggers that
write each DDL command's text, tag, role and objects as a transactional
logical decoding message with prefix pgjet.ddl, in the command's own
transaction. Consumers see it as a message event at the commit position and
time of that transaction. Event triggers need a superuser: "sql" prints the
SQL for one to run instead.
`

// ddlMain runs `pgjet-collector ddl-capture`: exit 0 when done, 1 when the
// database refused, 2 on usage errors.
func ddlMain(args []string) int {
	fs := flag.NewFlagSet("pgjet-collector ddl-capture", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dsn := fs.String("dsn", "", "PostgreSQL connection string of the source database (a superuser's)")
	file := fs.String("config", "", "pipeline file: its spec.source.config.dsn")
	usage := func(err error) int {
		fmt.Fprintf(os.Stderr, "pgjet-collector ddl-capture: %v\n\n%s", err, ddlUsage)
		return 2
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Print(ddlUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	action := args[0]
	if err := flagenv.Parse(fs, args[1:]); err != nil {
		return usage(err)
	}
	if action == "sql" {
		fmt.Print(ddlcapture.InstallSQL())
		return 0
	}
	if action != "install" && action != "uninstall" {
		return usage(fmt.Errorf("unknown action %q: use install, uninstall or sql", action))
	}
	if *dsn == "" && *file != "" {
		f, err := pipeline.Load(*file, os.LookupEnv)
		var errs *pipeline.Errors
		if errors.As(err, &errs) {
			if errs = errs.For(pipeline.ScopeCollector); errs.Len() > 0 {
				fmt.Fprintf(os.Stderr, "pgjet-collector ddl-capture: %s:\n%v\n", *file, errs)
				return 2
			}
		} else if err != nil {
			fmt.Fprintf(os.Stderr, "pgjet-collector ddl-capture: %v\n", err)
			return 2
		}
		*dsn = f.Source.DSN
	}
	if *dsn == "" {
		return usage(errors.New("give --dsn (or PGJET_DSN, or --config)"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector ddl-capture: cannot connect to PostgreSQL at %s: %v\n", redact.DSN(*dsn), session.ConnError(err))
		return 1
	}
	defer conn.Close(context.Background())
	run, done := ddlcapture.Install, "installed: every DDL command in database %s now writes a pgjet.ddl message\n"
	if action == "uninstall" {
		run, done = ddlcapture.Uninstall, "uninstalled from database %s\n"
	}
	if err := run(ctx, conn); err != nil {
		fmt.Fprintf(os.Stderr, "pgjet-collector ddl-capture %s: %v (event triggers need a superuser; `pgjet-collector ddl-capture sql` prints the SQL for one to run)\n", action, session.ConnError(err))
		return 1
	}
	fmt.Printf(done, conn.Config().Database)
	return 0
}
