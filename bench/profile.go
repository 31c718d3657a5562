package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/weftnet/weft/internal/netlab"
)

// profileName makes a file-name stem of a progress tag ("[round 2/3] weft-l2" →
// "weft-l2-r2").
func profileName(tag string) string {
	round, sys := "", tag
	if i := strings.Index(tag, "]"); strings.HasPrefix(tag, "[round ") && i > 0 {
		round, sys = strings.SplitN(tag[len("[round "):i], "/", 2)[0], strings.TrimSpace(tag[i+1:])
	}
	clean := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, sys)
	if round != "" {
		clean += "-r" + round
	}
	return clean
}

// startProfiles asks both hosts' weft agents for a CPU profile of the next seconds
// (curl inside each namespace, to the agent's pprof listener) into dir/NAME-HOST.pprof;
// the returned function waits for both and reports what failed.
func (s *session) startProfiles(ctx context.Context, dir, name string, seconds int) func() []error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() []error { return []error{err} }
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var done []string // reported by the caller's goroutine: Progress need not be safe for concurrent use
	for _, h := range []*netlab.Host{s.a, s.b} {
		file := filepath.Join(dir, name+"-"+hostSuffix(h.Name)+".pprof")
		url := "http://" + weftPprof + "/debug/pprof/profile?seconds=" + strconv.Itoa(max(1, seconds))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.run(ctx, h, "curl", "-sSf", "-o", file, url)
			if err == nil {
				err = checkProfile(file)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", file, err))
				return
			}
			done = append(done, file)
		}()
	}
	return func() []error {
		wg.Wait()
		for _, f := range done {
			progressf(s.opts, "profile … %s (go tool pprof -top bin/weft %s)", f, f)
		}
		return errs
	}
}

// hostSuffix is "a" or "b" of a lab host's name (weft-XXXX-a).
func hostSuffix(name string) string {
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// checkProfile checks that file holds a gzip stream (pprof's format), not an error page.
func checkProfile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return errors.New("not a pprof profile (no gzip header)")
	}
	return nil
}
