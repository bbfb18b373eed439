// Command pgjet-collector reads a PostgreSQL logical replication slot
// (pgoutput) and writes the decoded transactions to a raw JetStream stream,
// confirming the slot only after JetStream acknowledged them.
package main

import (
	"os"

	"github.com/pgjet/pgjet/collector/internal/command"
)

func main() { os.Exit(command.Main(os.Args[1:])) }
