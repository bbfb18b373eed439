package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/pgjet/pgjet/shared/help"
	"github.com/pgjet/pgjet/shared/natsconn"
)

// replayFlagNames are the flags only `replay` has.
var replayFlagNames = []string{"sink", "from-seq", "from-lsn", "from-time", "to-seq", "to-lsn", "to-time", "source", "into", "purge"}

// page is the router's --help and shell completion.
var page = help.Page{
	Name:    "pgjet-router",
	Summary: "reads the raw stream pgjet-collector writes and publishes every change as an event (native JSON, CloudEvents or Debezium) to output streams, with a deterministic Nats-Msg-Id",
	Usage: []string{
		"--config PIPELINE.yaml [--check-config] [flags that override it]",
		"--nats URL [--stream NAME] [--subject-prefix P] [--envelope native|cloudevents|debezium] [--stdout json|json-pretty|text]",
		"check|status [the same flags]",
		"replay --config PIPELINE.yaml [--sink ID] (--from-seq N | --from-lsn X/Y | --from-time T) [--into STREAM | --purge]",
		"completion bash|zsh",
	},
	Commands: []help.Command{
		{Name: "check", Summary: "check the raw stream, each route's output stream and durable, NATS permissions and the gap risk; change nothing (exit 0: no FAIL)"},
		{Name: "status", Summary: "show each route's durable (pending, redelivered) and output on one screen"},
		{Name: "replay", Summary: "rebuild one route's output from the raw stream, from a sequence, commit LSN or time", Flags: replayFlagNames},
		help.CompletionCommand,
	},
	Groups: []help.Group{
		{Title: "Pipeline file", Flags: []string{"config", "check-config"}},
		{Title: "NATS and its authentication", Flags: append([]string{"nats"}, natsconn.FlagNames...)},
		{Title: "Raw stream", Flags: []string{"raw-stream", "durable", "standby", "standby-ttl", "partition"}},
		{Title: "Past a hole in the raw stream (one-off, logged)", Flags: []string{"accept-gap", "dead-letter-raw"}},
		{Title: "Routes and envelopes", Flags: []string{"stream", "subject-prefix", "stdout", "envelope", "cloudevents-mode", "cloudevents-source",
			"cloudevents-type-prefix", "cloudevents-data", "group", "output-persist", "output-replicas", "output-duplicate-window", "ack-timeout"}},
		{Title: "Replay (pgjet-router replay)", Flags: replayFlagNames},
		{Title: "Operations", Flags: []string{"metrics", "log-level", "log-format", "memory-limit"}},
	},
	Notes: []string{
		"Every flag can also be given as PGJET_<NAME> in the environment (shown in brackets); a flag on the command line wins.\n" +
			"Give secrets in files (--nats-password-file, --nats-token-file) or the environment, not as arguments: they show in process listings.",
	},
	Files: append([]string{"config"}, natsconn.FileFlags...),
	Choices: map[string][]string{"log-level": {"debug", "info", "warn", "error"}, "log-format": {"text", "json"},
		"envelope": {"native", "cloudevents", "debezium"}, "stdout": {"json", "json-pretty", "text"}, "group": {"none", "transaction"},
		"cloudevents-mode": {"structured", "binary"}, "cloudevents-data": {"change", "native"}, "output-persist": {"default", "async"}},
}

// completionMain prints the completion script: `completion bash|zsh`.
func completionMain(args []string) int {
	var c config
	fs, _, _, _ := c.flagSet(page.Name, nil)
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
