// Package hostnet holds the small host-configuration steps the agent's edge subsystems
// (agent/clients, agent/containers) share: per-device IPv4 forwarding and removing routing
// rules. It keeps no state of its own.
//
// It may import x/sys and netlink only; nothing of weft.
package hostnet
