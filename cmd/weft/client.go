package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
)

// globals shared by the client commands.
type globals struct {
	socket string
	json   bool
}

func defaultSocket() string {
	if s := os.Getenv("WEFT_SOCKET"); s != "" {
		return s
	}
	return config.DefaultConfig().ControlSocket
}

func (g *globals) client() *api.Client { return api.NewClient(g.socket) }

// ctx is a command's context: cancelled by Ctrl-C, bounded unless the command waits.
func commandContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if timeout <= 0 {
		return ctx, stop
	}
	ctx2, cancel := context.WithTimeout(ctx, timeout)
	return ctx2, func() { cancel(); stop() }
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func addJSONFlag(cmd *cobra.Command, g *globals) {
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON instead of a table")
}

func age(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	return d.String() + " ago"
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
