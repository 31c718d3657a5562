package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// uiInfo is what `weft ui --json` prints.
type uiInfo struct {
	URL   string `json:"url"`             // empty: the console is off
	Token bool   `json:"token,omitempty"` // the console needs the token of ui.token_file
}

func newUICmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Print the URL of the local agent's web console (ui.listen)",
		Long: `Print the URL of the web console the local agent serves (ui.listen, 127.0.0.1:9190 by
default): the cluster map, this host's peers, services and policy, live.

On a remote host, reach it through ssh: ssh -L 9190:127.0.0.1:9190 HOST, then open
http://127.0.0.1:9190/. A console on another address needs ui.token_file: open
URL/login?token=TOKEN once in the browser.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			st, err := g.client().Status(ctx)
			if err != nil {
				return err
			}
			info := uiInfo{URL: st.UI, Token: st.UIToken}
			if g.json {
				return printJSON(cmd.OutOrStdout(), info)
			}
			if info.URL == "" {
				return fmt.Errorf("the web console is off: set ui.listen (--ui-listen, e.g. 127.0.0.1:9190) and restart the agent; " +
					"if it is set, the agent's log says why it did not start")
			}
			fmt.Fprintln(cmd.OutOrStdout(), info.URL)
			if info.Token {
				fmt.Fprintf(cmd.ErrOrStderr(), "the console needs the token of ui.token_file: open %slogin?token=TOKEN once\n", info.URL)
			}
			return nil
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}
