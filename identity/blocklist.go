package identity

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxBlocklistSize bounds a blocklist file (about 15000 fingerprints).
const MaxBlocklistSize = 1 << 20

// Blocklist is a set of revoked certificate fingerprints. A certificate is
// refused when its own fingerprint or its CA's is listed. The nil
// *Blocklist is empty. A Blocklist is immutable after parsing and safe for
// concurrent use.
type Blocklist struct {
	set map[Fingerprint]struct{}
}

// NewBlocklist returns a blocklist of fps.
func NewBlocklist(fps ...Fingerprint) *Blocklist {
	b := &Blocklist{set: make(map[Fingerprint]struct{}, len(fps))}
	for _, f := range fps {
		b.set[f] = struct{}{}
	}
	return b
}

// Contains reports whether f is listed.
func (b *Blocklist) Contains(f Fingerprint) bool {
	if b == nil {
		return false
	}
	_, ok := b.set[f]
	return ok
}

// Len returns the number of listed fingerprints.
func (b *Blocklist) Len() int {
	if b == nil {
		return 0
	}
	return len(b.set)
}

// ParseBlocklist reads one hex fingerprint (as `weft ca print` shows it) per
// line; blank lines and everything after a '#' are ignored. A line that is
// not a fingerprint is an error naming the line: a typo must not silently
// leave a host unrevoked.
func ParseBlocklist(r io.Reader) (*Blocklist, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBlocklistSize+1))
	if err != nil {
		return nil, fmt.Errorf("read blocklist: %w", err)
	}
	if len(data) > MaxBlocklistSize {
		return nil, fmt.Errorf("blocklist larger than %d bytes", MaxBlocklistSize)
	}
	b := NewBlocklist()
	for i, s := range strings.Split(string(data), "\n") {
		if j := strings.IndexByte(s, '#'); j >= 0 {
			s = s[:j]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		f, err := ParseFingerprint(s)
		if err != nil {
			return nil, fmt.Errorf("blocklist line %d: %w (one fingerprint from `weft ca print` per line, # starts a comment)", i+1, err)
		}
		b.set[f] = struct{}{}
	}
	return b, nil
}

// LoadBlocklistFile reads a blocklist file (see ParseBlocklist).
func LoadBlocklistFile(path string) (*Blocklist, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open blocklist: %w", err)
	}
	defer f.Close()
	b, err := ParseBlocklist(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
