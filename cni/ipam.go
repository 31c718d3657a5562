package cni

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The address store: weft's own IPAM rather than a delegation to host-local. The plugin is
// one binary that `weft cni install` puts in place, with nothing else to install or keep in
// step; the range is not configuration but the agent's subnet, known only at ADD time, so a
// delegated ipam block would have to be rewritten per call anyway.
//
// Layout, one directory per network name under DataDir (as host-local's, which operators
// know): a file per reserved address, named by the address and holding "CONTAINERID\nIFNAME\n"
// and, once the container is wired, "link HOSTVETH\n"; and a lock file. Every operation holds an exclusive flock on the lock file for its whole
// read-modify-write, so concurrent ADDs (separate processes) never hand out one address twice;
// the files survive agent and runtime restarts. An address is only ever reserved with
// O_EXCL, so even a store shared by mistake cannot double-book.

// ErrExhausted is returned when every address of the subnet is reserved.
var ErrExhausted = errors.New("no free address")

// Store reserves addresses of one network.
type Store struct {
	dir string
}

// OpenStore returns the store of network name under dataDir, creating its directory (0700).
func OpenStore(dataDir, name string) (*Store, error) {
	dir := filepath.Join(dataDir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("address store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// lock takes the store's exclusive lock; the returned func releases it.
func (s *Store) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("address store lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("address store lock: %w", err)
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}

func owner(id, ifname string) []byte { return []byte(id + "\n" + ifname + "\n") }

// splitEntry parses a reservation file: its owner ("ID\nIFNAME\n") and the host end of the
// container's veth, when recorded ("" for one being wired, or written by an older weft-cni).
func splitEntry(b []byte) (own []byte, link string) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, ""
	}
	j := bytes.IndexByte(b[i+1:], '\n')
	if j < 0 {
		return b, ""
	}
	own, rest := b[:i+j+2], b[i+j+2:]
	if l, ok := bytes.CutPrefix(rest, []byte("link ")); ok {
		if name, ok := bytes.CutSuffix(l, []byte("\n")); ok && validLinkName(string(name)) {
			link = string(name)
		}
	}
	return own, link
}

// validLinkName: a Linux interface name (1-15 bytes, no '/', whitespace or NUL).
func validLinkName(n string) bool {
	return len(n) > 0 && len(n) < 16 && !strings.ContainsAny(n, "/ \t\n\x00:") && n != "." && n != ".."
}

// errBadOwner: an id or interface name that would make two owners one ("a\nb", "c" and
// "a", "b\nc"). skel validates both already; the store does not rely on it.
var errBadOwner = errors.New("address store: container id and interface name must be non-empty and hold no newline or NUL")

func checkOwner(id, ifname string) error {
	if id == "" || ifname == "" || strings.ContainsAny(id, "\n\x00") || strings.ContainsAny(ifname, "\n\x00") {
		return errBadOwner
	}
	return nil
}

// entries lists the reserved addresses in subnet with their owners. Files that do not name an
// address of subnet (another subnet's leftovers, the lock) are skipped.
func (s *Store) entries(subnet netip.Prefix) (map[netip.Addr][]byte, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("address store: %w", err)
	}
	m := make(map[netip.Addr][]byte, len(des))
	for _, de := range des {
		a, err := netip.ParseAddr(de.Name())
		if err != nil || !subnet.Contains(a) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, de.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("address store: %w", err)
		}
		m[a] = b
	}
	return m, nil
}

// Reserve returns the address reserved for (id, ifname) in subnet, reserving the lowest free
// one that is not in exclude (the gateway, the agent's own address) if there is none yet: a
// repeated ADD gets the same address. Network and broadcast addresses are never handed out.
func (s *Store) Reserve(subnet netip.Prefix, id, ifname string, exclude ...netip.Addr) (netip.Addr, error) {
	if err := checkOwner(id, ifname); err != nil {
		return netip.Addr{}, err
	}
	unlock, err := s.lock()
	if err != nil {
		return netip.Addr{}, err
	}
	defer unlock()
	ents, err := s.entries(subnet)
	if err != nil {
		return netip.Addr{}, err
	}
	want := owner(id, ifname)
	for a, o := range ents {
		if own, _ := splitEntry(o); bytes.Equal(own, want) {
			return a, nil
		}
	}
	subnet = subnet.Masked()
	last := lastAddr(subnet)
	for a := subnet.Addr().Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if _, taken := ents[a]; taken || contains(exclude, a) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(s.dir, a.String()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return netip.Addr{}, fmt.Errorf("address store: %w", err)
		}
		_, werr := f.Write(want)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(f.Name())
			return netip.Addr{}, fmt.Errorf("address store: %w", werr)
		}
		return a, nil
	}
	return netip.Addr{}, ErrExhausted
}

// Lookup returns the address reserved for (id, ifname) in subnet, if any.
func (s *Store) Lookup(subnet netip.Prefix, id, ifname string) (netip.Addr, bool, error) {
	if err := checkOwner(id, ifname); err != nil {
		return netip.Addr{}, false, err
	}
	unlock, err := s.lock()
	if err != nil {
		return netip.Addr{}, false, err
	}
	defer unlock()
	ents, err := s.entries(subnet)
	if err != nil {
		return netip.Addr{}, false, err
	}
	want := owner(id, ifname)
	for a, o := range ents {
		if own, _ := splitEntry(o); bytes.Equal(own, want) {
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// Release frees every address (in any subnet) held by (id, ifname); none is no error, so DEL
// is idempotent.
func (s *Store) Release(id, ifname string) error {
	if err := checkOwner(id, ifname); err != nil {
		return err
	}
	return s.releaseIf(func(o []byte) bool { return bytes.Equal(o, owner(id, ifname)) })
}

// ReleaseExcept frees every address whose owner is not in keep (CNI GC's valid attachments).
func (s *Store) ReleaseExcept(keep map[string]bool) error {
	return s.releaseIf(func(o []byte) bool { return !keep[string(o)] })
}

func (s *Store) releaseIf(drop func(owner []byte) bool) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("address store: %w", err)
	}
	for _, de := range des {
		if _, err := netip.ParseAddr(de.Name()); err != nil {
			continue
		}
		p := filepath.Join(s.dir, de.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if own, _ := splitEntry(b); drop(own) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("address store: %w", err)
			}
		}
	}
	return nil
}

// SetLink records the host end of the veth of (id, ifname)'s reservation in subnet, once it
// exists: ReclaimStale may then free the reservation when that link is gone.
func (s *Store) SetLink(subnet netip.Prefix, id, ifname, link string) error {
	if err := checkOwner(id, ifname); err != nil {
		return err
	}
	if !validLinkName(link) {
		return fmt.Errorf("address store: %q is no interface name", link)
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	ents, err := s.entries(subnet)
	if err != nil {
		return err
	}
	want := owner(id, ifname)
	for a, o := range ents {
		if own, _ := splitEntry(o); bytes.Equal(own, want) {
			// The temporary name is no address, so entries() never reads it half-written.
			p := filepath.Join(s.dir, a.String())
			tmp := p + ".tmp"
			if err := os.WriteFile(tmp, append(want, "link "+link+"\n"...), 0o600); err != nil {
				return fmt.Errorf("address store: %w", err)
			}
			if err := os.Rename(tmp, p); err != nil {
				_ = os.Remove(tmp)
				return fmt.Errorf("address store: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("address store: no reservation of %s %s in %s", id, ifname, subnet)
}

// ReclaimStale frees the reservations in subnet whose recorded host link alive reports gone:
// the container's namespace went without a DEL reaching weft-cni (a chained plugin's DEL
// failed first, or the runtime crashed), and its veth went with it. Reservations with no link
// recorded (being wired, or older) are kept. It returns how many it freed.
func (s *Store) ReclaimStale(subnet netip.Prefix, alive func(link string) bool) (int, error) {
	unlock, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	ents, err := s.entries(subnet)
	if err != nil {
		return 0, err
	}
	n := 0
	for a, o := range ents {
		if _, link := splitEntry(o); link != "" && !alive(link) {
			if err := os.Remove(filepath.Join(s.dir, a.String())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, fmt.Errorf("address store: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// Count is the number of addresses reserved in subnet.
func (s *Store) Count(subnet netip.Prefix) (int, error) {
	unlock, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	ents, err := s.entries(subnet)
	return len(ents), err
}

// OwnerKey is how ReleaseExcept names an attachment.
func OwnerKey(id, ifname string) string { return string(owner(id, ifname)) }

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}
