package policy_test

import (
	"fmt"
	"net/netip"

	"github.com/weftnet/weft/policy"
)

// catalog is what the agent would implement over its catalog and membership.
type catalog map[netip.Addr]policy.Endpoint

func (c catalog) Endpoint(a netip.Addr) (policy.Endpoint, bool) { e, ok := c[a]; return e, ok }

func (c catalog) Service(name string) []policy.Instance {
	if name == "db" {
		return []policy.Instance{{Addr: netip.MustParseAddr("10.42.2.1"), Port: 5432, Proto: policy.ProtoTCP}}
	}
	return nil
}

func Example() {
	doc, err := policy.Parse([]byte(`
default: deny
rules:
  - name: web-db
    from: {groups: [web]}
    to:   {services: [db]}
  - name: ping
    from: {any: true}
    to:   {any: true, proto: icmp}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	web, db := netip.MustParseAddr("10.42.1.1"), netip.MustParseAddr("10.42.2.1")
	set, err := policy.Compile(doc, catalog{web: {Host: "web1", Groups: []string{"web"}}, db: {Host: "db1", Groups: []string{"db"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	engine, err := policy.New(policy.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	engine.Load(set)

	// weft policy test --from web1 --to db1 --port 5432/tcp
	for _, arg := range []string{"5432/tcp", "22/tcp", "icmp"} {
		port, proto, _ := policy.ParsePortProto(arg)
		fmt.Printf("%s: %s\n", arg, set.Explain(engine.Test(web, db, port, proto)))
	}
	// Output:
	// 5432/tcp: allow by rule 0 "web-db"
	// 22/tcp: deny by default (default: deny)
	// icmp: allow by rule 1 "ping"
}
