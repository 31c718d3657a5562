// Package console is the agent's read-only web console (ui.listen): the cluster map with
// link states and live throughput, one host's peers with a throughput sparkline, the
// services with their health, the policy with hit and drop counts and a "would this flow
// pass?" form. It owns the HTTP handler and its security rules (guard.go), the page and
// its assets embedded in the binary (assets/: plain JS, SVG, no CDN), the per-peer
// throughput sampler with its fixed ring of history (sampler.go), and the event stream
// (events.go).
//
// It gets what it shows from the agent as a Source of functions and a small Catalog
// interface; it never sees the agent. It may import agent/api, agent/internal/httpguard
// (the Host rule shared with the metrics listener), discovery/catalog (instance types) and
// policy (rule statistics); never github.com/weftnet/weft/agent nor another agent
// subsystem (internal/deptest).
//
// URLs (each page a stable URL answered with the same page; the script routes on it):
//
//	/                  302 to /map
//	/map[?view=table]  the cluster map, with its table view
//	/host/NAME         one member (this host: its peers, with history)
//	/services          services, instances, health, checks' output
//	/policy            rules with counters, the flow form
//	/assets/...        the embedded script and style sheet
//	/login?token=T     with ui.token_file: sets the session cookie, then 302 to /map
//	/api/cluster       {"self", "members", "peers" (with rx_bps, tx_bps), "time"}
//	/api/history       each peer's throughput samples of the last minutes
//	/api/events        text/event-stream: "cluster" every second, "services", "policy"
//	/api/services      the catalog grouped by service, with health and checks
//	/api/policy        rules with counters; /api/policy/test?from=A&to=B&port=P[&proto=tcp]
package console
