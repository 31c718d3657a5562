package resolvertest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
)

// Resolvectl records resolvectl invocations, for resolver.Resolved's Run; FailOn fails the
// step with that verb (the first argument) as resolvectl does when it is denied.
type Resolvectl struct {
	FailOn string

	mu    sync.Mutex
	calls []string
}

// Run records the invocation, its arguments joined by spaces.
func (f *Resolvectl) Run(_ context.Context, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(args, " "))
	if args[0] == f.FailOn {
		return []byte("Failed to set DNS configuration: Access denied"), errors.New("exit status 1")
	}
	return nil, nil
}

// Calls returns the invocations so far, in order.
func (f *Resolvectl) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}
