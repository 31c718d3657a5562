// Package services is the agent's service-catalog subsystem: it starts the catalog
// (discovery/catalog) with this host's services, serves it over DNS and the
// Consul-compatible API, moves those listeners when the overlay address moves, keeps the
// remote part of the catalog in step with gossip members, and routes /v1/services… of the
// control API.
//
// It gets what it needs from the agent as a Deps struct of values and functions (the
// configuration, the overlay address and subnet, the gossip tags it publishes into, the
// trust verdict on a member, the member list, a logger, a problem reporter); it never sees
// the agent. It may import discovery/catalog, discovery/membership (events and the tag
// budget), agent/config and agent/api; never github.com/weftnet/weft/agent, nor another
// agent subsystem, nor the datapath.
package services
