// Package netpolicy is the agent's network-policy subsystem: it owns the policy.Engine
// the tunnel consults (through Hook), the Resolver that names addresses after members,
// their groups and the catalog's services, the document in force (a local policy_file,
// else the newest CA-signed document spread by discovery/policydist), and the control
// API's /v1/policy routes and the weft_policy_* metrics.
//
// It gets everything else through Deps (functions over membership, the catalog, the
// trust checks and the agent's own address), never the agent itself. It may import
// policy, identity, crypto, peers, tunnel (for the EnginePolicy hook), agent/api,
// discovery/membership, discovery/policydist and agent/internal/clienttag (the codec of
// the tag in which hosts announce their WireGuard clients); never github.com/weftnet/weft/agent.
package netpolicy
