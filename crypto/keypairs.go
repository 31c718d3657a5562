package crypto

// Keypairs holds current, previous and next keypairs of one peer.
type Keypairs struct{}

// Install adds a keypair.
func (k *Keypairs) Install(kp *Keypair) (evicted []*Keypair) { return nil }

// Current returns the current keypair.
func (k *Keypairs) Current() *Keypair { return nil }

// Confirm promotes next to current.
func (k *Keypairs) Confirm(kp *Keypair) bool { return false }

// Clear drops all keypairs.
func (k *Keypairs) Clear() (evicted []*Keypair) { return nil }
