package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// weft gen-docs (hidden): the man pages and shell completions, generated from the commands
// themselves so that they cannot drift; `make docs`, `make install` and the Debian package
// run it.
func newGenDocsCmd() *cobra.Command {
	var man, completion string
	cmd := &cobra.Command{
		Use:    "gen-docs",
		Short:  "Write the man pages and shell completions (for packaging)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true // reproducible: no generation date in the pages
			if man != "" {
				if err := os.MkdirAll(man, 0o755); err != nil {
					return err
				}
				hdr := &doc.GenManHeader{Title: "WEFT", Section: "1", Source: "weft", Manual: "weft manual"}
				if err := doc.GenManTree(root, hdr, man); err != nil {
					return fmt.Errorf("man pages: %w", err)
				}
			}
			if completion != "" {
				if err := os.MkdirAll(completion, 0o755); err != nil {
					return err
				}
				for name, gen := range map[string]func(string) error{
					"weft.bash": func(p string) error { return root.GenBashCompletionFileV2(p, true) },
					"_weft":     root.GenZshCompletionFile,
					"weft.fish": func(p string) error { return root.GenFishCompletionFile(p, true) },
				} {
					if err := gen(filepath.Join(completion, name)); err != nil {
						return fmt.Errorf("completion %s: %w", name, err)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&man, "man", "", "directory for the man pages (section 1)")
	cmd.Flags().StringVar(&completion, "completion", "", "directory for the bash, zsh and fish completions")
	return cmd
}
