// Package catalog is weft's service catalog: services and their health checks
// (tcp, http, exec, ttl), the compact catalog tag codec that carries them in
// gossip, blocking watches, and the DNS server that answers for them.
// Sub-package balance picks among instances on the client side.
//
// A Catalog (NewCatalog) holds this node's registrations, publishes them
// through a callback (the agent sets the membership tag CatalogTagKey), and
// indexes every node's services from their tags (UpdateNode, RemoveNode). It
// knows neither membership nor the datapath: the agent wires the two together.
package catalog
