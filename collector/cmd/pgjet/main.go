// Command pgjet streams PostgreSQL changes to stdout and NATS JetStream in
// one process: pgjet-collector with its embedded JetStream server, and
// pgjet-router's routes. pgoutput-stream's command line runs as written.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgjet/pgjet/collector/internal/onebox"
	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/logging"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == help.CompletionCommand.Name {
		if len(os.Args) != 3 || os.Args[2] != "bash" && os.Args[2] != "zsh" {
			fmt.Fprintln(os.Stderr, "pgjet completion: give the shell: bash or zsh")
			os.Exit(2)
		}
		if err := onebox.Page.Completion(os.Stdout, onebox.FlagSet(), os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "pgjet %v\n", err)
			os.Exit(2)
		}
		return
	}
	cfg, err := onebox.Parse(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgjet: %v\n", err)
		os.Exit(2)
	}
	if cfg.PrintConfig {
		os.Stdout.Write(cfg.Printable)
		return
	}
	log := logging.New(os.Stderr, cfg.LogJSON, cfg.LogLevel)
	for _, w := range cfg.Strays {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := onebox.Run(ctx, cfg, log); err != nil {
		fmt.Fprintf(os.Stderr, "pgjet: %v\n", err)
		os.Exit(1)
	}
	log.Info("stopped")
}
