// Package policy is weft's network policy: a document of rules by group, service, CIDR,
// host and port; its compilation against the cluster's catalog; and an Engine that
// judges packets in the datapath with a flow table (conntrack), so that the rules are
// walked once per new flow and return traffic of an admitted flow passes.
//
// The package imports nothing of weft: addresses are netip.Addr, a peer's identity is an
// Endpoint (host name and groups), the catalog is the Resolver interface.
//
// # The document
//
// YAML, or JSON (read as YAML's flow style):
//
//	version: 7                  # set by the signer; the newest valid version wins
//	default: deny               # allow (also when absent) or deny
//	rules:
//	  - name: web-db            # optional, unique; shown by `weft policy show`
//	    from: {groups: [web]}
//	    to:   {services: [db]}  # the hosts and ports the catalog lists for db
//	  - from: {cidrs: [10.42.0.0/16]}
//	    to:   {groups: [monitoring], ports: ["9100/tcp"]}
//	  - action: deny            # allow (also when absent) or deny
//	    from: {hosts: [laptop1]}
//	    to:   {any: true}
//	  - from: {any: true}
//	    to:   {any: true, proto: icmp}
//
// A selector has any: true (alone), or one or more of groups, services, cidrs (a prefix,
// or an address meaning /32 or /128) and hosts (node names). Entries within a field are
// alternatives; fields that are set must all match. proto (tcp, udp, icmp, any) and ports
// belong to the to side or to the rule itself, not both; the from side has neither
// (source ports are ephemeral). A port is "5432", "5432/tcp" or "8000-8100/udp"; a port
// without /proto takes the rule's proto, or means tcp and udp when the proto is any or
// absent; icmp has no ports. A rule with ports matches only TCP and UDP. icmp covers
// ICMP and ICMPv6; any also covers other IP protocols (GRE, ESP, SCTP...).
//
// Parse refuses, with the field's path, the rule's name and the line, anything it does
// not understand: unknown or duplicate keys, aliases, wrong types, bad values, e.g.
//
//	rules[1].to.ports[0]: "70000/tcp": port out of range (rule "web-db", line 7)
//
// Marshal writes the document back; Parse(Marshal(d)) is d.
//
// # Semantics
//
// A flow is judged once, by its first packet, in order: the first rule whose from
// matches the source endpoint, whose to matches the destination endpoint, and whose
// proto/ports match the packet's protocol and destination port decides (allow or deny);
// no matching rule leaves it to the default. An admitted flow enters the flow table and
// its packets pass in both directions until it times out; a refused packet creates no
// flow. Consequences:
//
//   - groups on the from side of an inbound packet are the sender's identity as the
//     caller passes it (the peer's certificate), never the packet's claim nor what the
//     catalog says of the source address. Everywhere else (this host, the destination of
//     an outbound packet) groups and host come from Resolver.Endpoint. Without a CA the
//     groups are each agent's own `groups` setting spread by gossip: then they are only as
//     trustworthy as the gossip key.
//   - services on the to side match the (address, port, protocol) instances the catalog
//     lists for the service (an instance without a port matches every port of its
//     address); on the from side, the instances' addresses. They are resolved by Compile
//     and again by Set.Rebind when the catalog changes.
//   - cidrs match the packet's addresses; hosts match the node name.
//   - Each end enforces: Outbound judges what this host sends (the rules' from side is
//     this host), Inbound what it receives. Both must admit a flow.
//
// Timeouts (Config, DefaultConfig): TCP established 12m, TCP with packets in one
// direction only (a SYN without answer) 30s, TCP after RST or FINs both ways 10s, UDP
// 3m, ICMP 30s, other protocols 10m; each packet refreshes its flow. An ICMP echo flow is
// keyed by its identifier; other ICMP messages (errors) are flows of their own between
// the two hosts and need a rule (e.g. proto: icmp), they are not tied to the flow they
// report on.
//
// Fragments: a first fragment carries the ports and is judged like any packet; when it
// is admitted its datagram (source, destination, protocol, identification) is
// remembered for FragmentTimeout, and later fragments of that datagram pass. A later
// fragment whose first fragment was refused, is lost, or has not arrived yet (out of
// order) is dropped as policy_fragment_unknown. A TCP fragment at offset 8 (which could
// rewrite the flags, RFC 1858) and a first fragment too short for its transport header
// are malformed. IPv6 extension headers are walked up to 8 deep; a longer chain is
// malformed.
//
// # Enforcement and integration
//
// Build: parse the document (Parse), Compile it against the agent's Resolver, create an
// Engine (New) and Load the Set. On a catalog or membership change call Set.Rebind and
// Load the result: one Service call per service name, no re-parse. Load is an atomic
// pointer swap; the datapath never takes a lock to read the policy. Flows admitted under
// an older Set are re-checked on their next packet and removed if the new Set refuses
// them (an outbound packet of a flow a peer opened cannot be re-checked, lacking the
// peer's identity; its next inbound packet is). An Engine without a Set allows
// everything and tracks nothing: today's behaviour.
//
// In the datapath: Outbound(pkt, now) after routing and before sealing; Inbound(pkt,
// peer, now) after opening and after the allowed-source check (the flow table relies on
// a source address being bound to its peer). Pass only IP packets: ARP, NDP and other
// non-IP frames of L2 mode are the caller's to allow, before calling; IPv6 NDP is ICMPv6
// and would be judged like any ICMPv6, so L2 mode passes it itself. Plain (unencrypted)
// L2 has no authenticated sender and does not enforce policy. now is a monotonic clock in
// nanoseconds (Monotonic), read once per batch, never per packet. Neither pkt nor peer is
// retained; no call allocates.
//
// A Verdict is exactly one of: AllowedByRule (a new flow, Rule its index), AllowedByFlow
// (the flow table; Rule the rule that admitted the flow, -1 the default),
// AllowedByDefault, or Denied with a Reason: policy_denied (a deny rule, Rule its index,
// or the deny default, Rule -1), policy_malformed, policy_fragment_unknown,
// policy_flow_quota (see below). The datapath
// maps the reasons onto its named drops; Engine.Stats counts them and the flow table
// (flows, added, expired, evicted). Set.Stats lists each rule with its hits (flows it
// admitted) and drops (packets it refused), and the default last: `weft policy show`.
// Set.Test (Engine.Test) answers `weft policy test --from H --to H2 --port 5432/tcp`
// (ParsePortProto parses the port) without touching counters or flows, and Set.Explain
// says who decided.
//
// The flow table is bounded by Config.MaxFlows, allocated at New. When it is full the
// flow nearest to expiry (among a few examined) is evicted and counted; a flood of new
// flows therefore pushes out idle flows first. An evicted flow's next packet is judged
// afresh: in its original direction the rules admit it again, but a reply is a new flow
// in the reverse direction and is usually refused. So that one peer that may open many
// flows cannot crowd out the others' return traffic, Config.MaxFlowsPerPeer (a quarter
// of the table by default) bounds the flows a peer, by its Endpoint.Host, holds opened
// inbound: a new flow beyond it is refused as policy_flow_quota (not a hit of the rule
// that would have admitted it), and the peer may open flows again as its old ones expire.
// Flows this host opens and peers without a name are not counted; neither are peers
// after the first 4096 names. Call Engine.Sweep from a slow timer to reclaim expired
// flows the datapath has not touched.
//
// # Compared with Calico and Nebula
//
// Calico: policies select endpoints by label selectors and apply ordered ingress and
// egress rules with allow, deny, pass and log actions, and namespaces and tiers order
// them; state lives in the Kubernetes API or etcd and is rendered to iptables/eBPF per
// node. Here: groups play the labels (a fixed set per host, from its certificate, not a
// selector expression); one document has ordered rules with allow and deny and a
// default, with no tiers, no pass, no namespaces; it is spread by gossip, signed, with no
// central store. Calico's egress rules are this package's Outbound check, its ingress
// rules Inbound; in Calico a rule belongs to one endpoint's policy, here every rule names
// both ends and each host enforces the rules that concern it.
//
// Nebula: firewall.inbound and firewall.outbound lists per host, allow-only, matching
// port, proto, host, groups (all of which the certificate must hold), CIDR and CA, with
// conntrack timeouts tcp 12m, udp 3m, default 10m. Here: one cluster-wide document in
// place of per-host config lists; a groups list means any of them (Nebula's means all);
// deny rules and rule order; services resolved through the
// catalog; a bounded flow table that evicts (Nebula's grows); TCP state (a SYN without
// answer leaves after 30s, a closed connection after 10s); a counted reason for every
// refusal and per-rule hit and drop counters. Like Nebula, groups come from the
// authenticated certificate and a flow admitted by an old rule set is re-checked after a
// reload.
package policy
