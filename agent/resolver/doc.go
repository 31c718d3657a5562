// Package resolver integrates the agent with the host's resolver: when systemd-resolved
// runs, the agent makes it send the names of its DNS domain (~weft, a routing-only domain)
// to its DNS server, on the device's link, so `curl http://web.service.weft` works without
// @127.0.0.1, and reverts the link on exit. Without resolved it says so, and `weft dns
// setup` (Setup) prints the line to add to /etc/resolv.conf or dnsmasq.
//
// It may import agent/config; never the agent or another subsystem.
package resolver
