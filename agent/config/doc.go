// Package config is the agent's configuration: the settings (Config and its sections, the
// Settings table that declares each setting's YAML key, flag and help once), reading them
// from YAML, and checking them.
//
// A configuration is built in two steps, as Consul builds its RuntimeConfig from its raw
// Config. First decoding: LoadConfig reads a file over DefaultConfig (reporting every
// unknown key and value of the wrong shape by line and key, check.go), and `weft agent`
// applies its flags over that. Then resolving: Resolve takes the decoded value and returns
// the one the agent runs with, with the defaults that depend on other settings filled in,
// and reports every problem at once (errors.Join of *Error, each naming its key and, when
// the value came from the file, its line). Validate and Check are Resolve in place.
//
// The resolved configuration is a Config too, not a separate RuntimeConfig type: the agent
// and each of its subsystems read Config's fields and sections (GossipConfig, DNSConfig, …)
// today, and a second type with the same fields would have to be kept in step with the
// first by hand, for every setting, while Settings, the flags and the YAML keys are
// declared over Config. What separates the steps is the function, not the type: Resolve
// never changes its argument (lists it fills defaults into are copied), and Validate, which
// agent.New calls, replaces a Config by its resolved value.
//
// It imports the catalog (services are part of the configuration), identity (group names),
// membership (the gossip key's format) and policy (its default sizes); never the agent or
// the datapath.
package config
