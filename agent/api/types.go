package api

import (
	"net/netip"
	"time"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/policy"
)

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
	// MTUSource says where MTU comes from: "underlay eth0 1460 − 68 (l3, IPv4)" (the link
	// toward the peers less weft's overhead), "configured (underlay eth0 allows 1392)",
	// "configured", or the assumption made when no underlay was found.
	MTUSource string `json:"mtu_source,omitempty"`
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
	// TUN is which TUN device L3 runs on: "weft (offload)", or "wireguard-go (WHY)" when the
	// kernel refused the virtio-net header or the offloads (empty in L2).
	TUN string `json:"tun,omitempty"`
	// UI is the web console's URL while it serves (ui.listen; empty: off or not bound);
	// UIToken: it needs the token of ui.token_file (open UI + "login?token=TOKEN").
	UI      string `json:"ui,omitempty"`
	UIToken bool   `json:"ui_token,omitempty"`
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
	// PathMTU is the largest IP packet the underlay path to the peer's endpoint carries,
	// as the datapath found it (route MTU, ICMP errors, probes); 0: not known yet.
	PathMTU int `json:"path_mtu,omitempty"`
}

// JoinRequest is POST /v1/join.
type JoinRequest struct {
	Addrs []string `json:"addrs"`
}

// JoinResponse answers a join.
type JoinResponse struct {
	Joined int `json:"joined"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// ClientAdd is POST /v1/clients.
type ClientAdd struct {
	Name      string     `json:"name"`
	Address   netip.Addr `json:"address,omitzero"`     // zero: allocate from clients.range
	PublicKey string     `json:"public_key,omitempty"` // empty: generate the key pair
	Keepalive Duration   `json:"persistent_keepalive,omitzero"`
	Endpoint  string     `json:"endpoint,omitempty"` // HOST:PORT the client dials; empty: the advertise address
}

// ClientAdded answers POST /v1/clients.
type ClientAdded struct {
	Client WGClient `json:"client"`
	Config string   `json:"config"` // wg-quick; its PrivateKey is a placeholder when the public key was given
}

// FDBEntry is one row of GET /v1/fdb.
type FDBEntry struct {
	MAC    string `json:"mac"`
	Remote string `json:"remote"` // peer name or key (encrypted), VTEP address (plain), "local"
	Static bool   `json:"static"`
	Age    string `json:"age,omitempty"`
}

// KeyringStatus is this host's gossip keyring (a keyring acts on one host only).
type KeyringStatus struct {
	// Members and Responses are 1: this host (the shape of an older cluster-wide answer).
	Members   int `json:"members"`
	Responses int `json:"responses"`
	// Keys maps each installed key (base64) to 1; Primary the key this host sends with.
	Keys    map[string]int `json:"keys,omitempty"`
	Primary map[string]int `json:"primary,omitempty"`
	// Errors is unused (kept for the older cluster-wide answer).
	Errors map[string]string `json:"errors,omitempty"`
}

// PingTarget is what a ping goes to: the overlay address and the peer that carries it.
type PingTarget struct {
	Addr netip.Addr
	Peer Peer
}

// PolicyStatus is GET /v1/policy.
type PolicyStatus struct {
	// Source is "none", "file" (policy_file) or "gossip" (a signed document).
	Source string `json:"source"`
	// Version is the newest signed document's version this host holds (0: none); it is in
	// force unless Source is "file".
	Version uint64 `json:"version"`
	// Document is the document in force, as YAML.
	Document string             `json:"document,omitempty"`
	Rules    []policy.RuleStats `json:"rules,omitempty"`
	Flows    int                `json:"flows"`
	Drops    map[string]uint64  `json:"drops,omitempty"`
	// Refused counts signed documents refused, by reason.
	Refused map[string]uint64 `json:"refused,omitempty"`
	// Enforced is false in plain L2, which does not enforce policy.
	Enforced bool `json:"enforced"`
}

// ReloadResult is what POST /v1/reload (`weft reload`) answers.
type ReloadResult struct {
	Changed       []string `json:"changed"`
	RestartNeeded []string `json:"restart_needed"`
}

// ServicesResponse is GET /v1/services: every instance in the cluster and the catalog index
// (pass it back as ?index= to wait for the next change).
type ServicesResponse struct {
	Index     uint64             `json:"index"`
	Instances []catalog.Instance `json:"instances"`
}

// WGClient is one stock WireGuard client of this host.
type WGClient struct {
	Name      string     `json:"name"`
	Address   netip.Addr `json:"address"`
	PublicKey string     `json:"public_key"`
	Keepalive Duration   `json:"persistent_keepalive,omitzero"`
	Created   time.Time  `json:"created"`
}

// PolicyTest is GET /v1/policy/test.
type PolicyTest struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Port     string `json:"port"`
	Allowed  bool   `json:"allowed"`
	Decision string `json:"decision"`
	Rule     int    `json:"rule"` // -1: the default
	RuleName string `json:"rule_name,omitempty"`
	Explain  string `json:"explain"`
}

// Subnet is GET /v1/subnet: what the CNI plugin needs (cni.HostNetwork on its side).
type Subnet struct {
	Network    string `json:"network"`
	Subnet     string `json:"subnet"`
	Address    string `json:"address"`
	Gateway    string `json:"gateway"`
	MTU        int    `json:"mtu"`
	IPMasq     bool   `json:"ipmasq"`
	Containers bool   `json:"containers"`
}

// PrivateKeyPlaceholder stands for the client's private key in a config made for a
// public key the client generated itself.
const PrivateKeyPlaceholder = "<the client's private key>"

// KeyRequest names one gossip key (base64).
type KeyRequest struct {
	Key string `json:"key"`
}

// PolicyApplied answers POST /v1/policy.
type PolicyApplied struct {
	Version uint64 `json:"version"`
}

// PolicyApply is POST /v1/policy: an envelope signed by `weft policy apply`.
type PolicyApply struct {
	Signed []byte `json:"signed"` // base64 in JSON
}

// Duration is a time.Duration in the API's JSON documents (kept as the agent has always
// written it, so stored clients read back unchanged).
type Duration struct{ time.Duration }
