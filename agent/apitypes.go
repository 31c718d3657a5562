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
	// Counters are datapath counters other than drops (L2 plain: frames, ARP suppressed).
	Counters map[string]uint64 `json:"counters,omitempty"`
	// RetryJoin is the progress of gossip.retry_join ("joining: attempt 3, last error …",
	// "joined 2 members at 10:04:05", "gave up after 5 attempts"); empty without retry_join.
	RetryJoin string `json:"retry_join,omitempty"`
	// Problems lists conditions an operator should act on (e.g. a subnet conflict).
	Problems []string `json:"problems,omitempty"`
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
