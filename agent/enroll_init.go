package agent

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weftnet/weft/discovery/enroll"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
)

// InitResult is what InitCluster wrote.
type InitResult struct {
	CA          *identity.Certificate
	Fingerprint identity.Fingerprint
	Files       []string
}

// caValidity is the validity of the CA InitCluster creates: it outlives many renewals of
// host certificates (as `weft ca init`'s default).
const caValidity = 5 * 365 * 24 * time.Hour

// InitCluster makes dir (a state directory) the first CA host of a new cluster: the CA
// (ca.key, mode 0600, and ca.crt), the gossip key (gossip.key, 0600) and the allocation
// state (enroll/). It never overwrites: a directory that already holds a CA is an error.
func InitCluster(dir, name string) (*InitResult, error) {
	sp := func(n string) string { return filepath.Join(dir, n) }
	for _, n := range []string{stateCAKey, stateCACert, stateHostCert, stateEnrolledAs} {
		if exists(sp(n)) {
			return nil, fmt.Errorf("%s already exists: this state directory belongs to a cluster already (start it with `weft agent --state-dir %s`); to create another, pass another --state-dir", sp(n), dir)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w (run as root, or pass --state-dir a writable directory)", err)
	}
	now := time.Now()
	ca, key, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(caValidity)}, nil)
	if err != nil {
		return nil, err
	}
	crt, err := ca.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := identity.WriteNewFile(sp(stateCAKey), identity.MarshalCAKeyPEM(key), 0o600); err != nil {
		return nil, err
	}
	if err := identity.WriteNewFile(sp(stateCACert), crt, 0o644); err != nil {
		os.Remove(sp(stateCAKey))
		return nil, err
	}
	files := []string{sp(stateCAKey), sp(stateCACert)}
	if !exists(sp(stateGossipKey)) {
		gk, err := membership.GenerateGossipKey()
		if err != nil {
			return nil, err
		}
		if err := identity.WriteNewFile(sp(stateGossipKey), []byte(base64.StdEncoding.EncodeToString(gk)+"\n"), 0o600); err != nil {
			return nil, err
		}
		files = append(files, sp(stateGossipKey))
	}
	if err := enroll.InitStore(sp(stateEnrollDir)); err != nil {
		return nil, err
	}
	files = append(files, sp(stateEnrollDir))
	fp, err := ca.Fingerprint()
	if err != nil {
		return nil, err
	}
	return &InitResult{CA: ca, Fingerprint: fp, Files: files}, nil
}
