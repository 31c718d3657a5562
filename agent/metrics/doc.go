// Package metrics serves what the agent exposes for operators: the Prometheus /metrics
// listener (metrics_listen) with the agent's collectors, read at scrape time, and the pprof
// listener (debug.pprof_listen) on its own mux.
//
// The collectors get the agent's values through Source, a struct of functions (peers,
// members, datapath drops, proxy events, DNS forwarding, catalog instances); they never see
// the agent. It may import agent/api, agent/config, discovery/catalog (for the types of DNS
// counters and instances), internal/version and the Prometheus client; never
// github.com/weftnet/weft/agent nor another agent subsystem.
package metrics
