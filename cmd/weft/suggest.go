package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/weftnet/weft/agent/config"
)

// Unknown flags get a suggestion, as unknown commands do ("Did you mean this?"): cobra
// suggests commands only. The candidates are the command's own and inherited flags; a flag
// spelled as a YAML key (--consul-api-listen for consul_api.listen) names that key's flag.

// suggestFlagErrors makes every command of the tree answer an unknown flag with the nearest
// known ones (cobra hands a command's flag errors to the nearest FlagErrorFunc up the tree).
func suggestFlagErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		name, ok := unknownFlagName(err)
		if !ok {
			return err
		}
		if s := suggestFlags(cmd, name); len(s) > 0 {
			return fmt.Errorf("%w\n\nDid you mean this?\n\t--%s\n\nRun '%s --help' for the flags", err, strings.Join(s, "\n\t--"), cmd.CommandPath())
		}
		return fmt.Errorf("%w (run '%s --help' for the flags)", err, cmd.CommandPath())
	})
}

// unknownFlagName reads pflag's "unknown flag: --NAME" (long flags only: a single letter has
// nothing to be near).
func unknownFlagName(err error) (string, bool) {
	const p = "unknown flag: --"
	msg := err.Error()
	if !strings.HasPrefix(msg, p) {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(msg, p), "=")
	return name, name != ""
}

// suggestFlags returns the flags of cmd nearest to name: the flag of the YAML key that name
// spells, else those within an edit distance of about a third of the name, or that name
// contains (or that contain name, for 3 letters or more), nearest first.
func suggestFlags(cmd *cobra.Command, name string) []string {
	known := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if !f.Hidden {
			known[f.Name] = true
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	asKey := strings.NewReplacer("_", "-", ".", "-").Replace(name)
	for _, s := range config.Settings {
		if strings.NewReplacer("_", "-", ".", "-").Replace(s.Key) == asKey && known[s.Flag] && s.Flag != name {
			return []string{s.Flag}
		}
	}
	best, bestD := []string(nil), 1<<30
	limit := max(2, len(name)/3)
	for k := range known {
		d := editDistance(name, k)
		near := d <= limit || (len(name) >= 3 && (strings.Contains(k, name) || strings.Contains(name, k) && len(k) >= 4))
		if !near {
			continue
		}
		switch {
		case d < bestD:
			best, bestD = []string{k}, d
		case d == bestD:
			best = append(best, k)
		}
	}
	slices.Sort(best)
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
