package agent

import "time"

// The control API's JSON documents. They are the agent's public surface: the CLI, scripts
// and tests read them, so fields are only ever added.

// Status is GET /v1/status.
type Status struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Protocol   int       `json:"protocol"`
	Mode       string    `json:"mode"`
	Encryption string    `json:"encryption"`
	PublicKey  string    `json:"public_key"`
	Interface  string    `json:"interface"`
	Address    string    `json:"address"`
	Subnet     string    `json:"subnet"`
	MTU        int       `json:"mtu"`
	VNI        uint32    `json:"vni"`
	ListenPort int       `json:"listen_port"`
	Gossip     string    `json:"gossip"` // gossip address, or "disabled"
	Members    int       `json:"members"`
	Peers      int       `json:"peers"`
	Started    time.Time `json:"started"`
	// Drops counts packets the datapath dropped, by reason.
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Counters are datapath counters other than drops (L2 plain: frames, ARP suppressed), and
	// catalog_foreign_service_address: members' services dropped for naming an address
	// outside their subnet.
	Counters map[string]uint64 `json:"counters,omitempty"`
	// RetryJoin is the progress of gossip.retry_join ("joining: attempt 3, last error …",
	// "joined 2 members at 10:04:05", "gave up after 5 attempts"); empty without retry_join.
	RetryJoin string `json:"retry_join,omitempty"`
	// Problems lists conditions an operator should act on (e.g. a subnet conflict).
	Problems []string `json:"problems,omitempty"`
	// Conflicts lists public keys announced by several live members (peered with neither).
	Conflicts []string `json:"conflicts,omitempty"`
	// Certificate is this host's certificate when a CA is configured.
	Certificate *CertificateStatus `json:"certificate,omitempty"`
	// TAP is how the L2 TAP runs (nil in L3).
	TAP *TAPStatus `json:"tap,omitempty"`
}

// TAPStatus is the L2 TAP in Status: with offload or frame by frame (tap_offload).
type TAPStatus struct {
	// Offload: virtio-net header, TSO and checksum offload, batched reads.
	Offload bool `json:"offload"`
	// Reason the TAP runs frame by frame: "tap_offload false" or what the kernel refused
	// ("kernel refused TUNSETOFFLOAD: invalid argument"); empty with offload.
	Reason string `json:"reason,omitempty"`
}

// CertificateStatus is this host's certificate in Status.
type CertificateStatus struct {
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	Prefixes    []string  `json:"prefixes"`
	Groups      []string  `json:"groups,omitempty"`
	NotAfter    time.Time `json:"not_after"`
	CAs         int       `json:"cas"`         // trusted CAs
	Blocklisted int       `json:"blocklisted"` // fingerprints on the blocklist
	Warnings    []string  `json:"warnings,omitempty"`
}

// Member is one entry of GET /v1/members.
type Member struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	Status    string `json:"status"`
	PublicKey string `json:"public_key,omitempty"`
	Subnet    string `json:"subnet,omitempty"`
	DataPort  int    `json:"data_port,omitempty"`
	VNI       uint32 `json:"vni,omitempty"`
	Protocol  int    `json:"protocol,omitempty"`
	Error     string `json:"error,omitempty"`
	// Refused is why this host refuses the member's claims (a reason label of
	// weft_gossip_claims_refused_total), RefusedDetail the details; empty when accepted.
	Refused       string `json:"refused,omitempty"`
	RefusedDetail string `json:"refused_detail,omitempty"`
	// Groups and CertNotAfter come from the member's verified certificate (CA only).
	Groups       []string  `json:"groups,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// Peer is one entry of GET /v1/peers.
type Peer struct {
	Name          string    `json:"name,omitempty"`
	PublicKey     string    `json:"public_key"`
	Endpoint      string    `json:"endpoint"`
	AllowedIPs    []string  `json:"allowed_ips"`
	LastHandshake time.Time `json:"last_handshake"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
	RxPackets     uint64    `json:"rx_packets"`
	TxPackets     uint64    `json:"tx_packets"`
	Handshakes    uint64    `json:"handshakes"`
	// State is up, handshaking, handshake failing, no endpoint or idle (peerstate.go);
	// StateReason says why a handshake is failing.
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
	// HandshakeFailures counts handshake attempts given up unanswered.
	HandshakeFailures uint64            `json:"handshake_failures,omitempty"`
	Drops             map[string]uint64 `json:"drops,omitempty"`

	// NoReplyHandshakes counts new handshakes started because data sent to the peer got no
	// authenticated reply for 15 s (the peer had lost the session: restarted, re-added us).
	NoReplyHandshakes uint64 `json:"no_reply_handshakes,omitempty"`
}

// JoinRequest is POST /v1/join.
type JoinRequest struct {
	Addrs []string `json:"addrs"`
}

// JoinResponse answers a join.
type JoinResponse struct {
	Joined int `json:"joined"`
}

// apiError is the body of every non-2xx answer.
type apiError struct {
	Error string `json:"error"`
}
