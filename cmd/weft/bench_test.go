package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindBench(t *testing.T) {
	bin, onPath := t.TempDir(), t.TempDir()
	self := filepath.Join(bin, "weft")
	t.Setenv("PATH", onPath)

	_, err := findBench(self)
	if !errors.Is(err, errNoBench) || !strings.Contains(err.Error(), "make build") ||
		!strings.Contains(err.Error(), "go build -o "+filepath.Join(bin, "weft-bench")+" ./cmd/weft-bench") {
		t.Fatalf("nothing installed: %v, want errNoBench saying how to build it", err)
	}

	writeExe(t, filepath.Join(onPath, "weft-bench"))
	if got, err := findBench(self); err != nil || got != filepath.Join(onPath, "weft-bench") {
		t.Fatalf("on PATH: %q, %v", got, err)
	}

	writeExe(t, filepath.Join(bin, "weft-bench"))
	if got, err := findBench(self); err != nil || got != filepath.Join(bin, "weft-bench") {
		t.Fatalf("next to weft: %q, %v (want it preferred over PATH)", got, err)
	}
}
