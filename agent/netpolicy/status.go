package netpolicy

import (
	"fmt"
	"net/netip"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/policy"
)

// lookupHost resolves `weft policy test`'s --from/--to: an address, or a member's (or this
// host's) name, meaning its overlay address.
func (p *Policy) lookupHost(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	if s == p.cfg.Name {
		_, addr := p.deps.Self()
		return addr, nil
	}
	if p.deps.Members != nil {
		for _, m := range p.deps.Members() {
			if m.Name == s && m.InfoErr == nil && m.Info.Subnet.IsValid() && p.deps.Trusted(m.Name) {
				return m.Info.Subnet.Masked().Addr().Next(), nil // the member's gateway address
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%q is neither an address nor a member's name (see weft members)", s)
}

// Status is GET /v1/policy: the document in force, its rules with hit and drop counts,
// the flow table, the distribution's version and refusals.
func (p *Policy) Status() api.PolicyStatus {
	p.mu.Lock()
	source := p.source
	p.mu.Unlock()
	ds := p.dist.Status()
	st := api.PolicyStatus{Source: source, Version: ds.Version, Refused: ds.Refused}
	st.Enforced = !p.cfg.PlainL2
	es := p.engine.Stats()
	st.Flows = es.Flows
	st.Drops = map[string]uint64{}
	for r, n := range es.Drops {
		if n != 0 {
			st.Drops[policy.Reason(r).String()] = n
		}
	}
	if s := p.engine.Current(); s != nil {
		st.Rules = s.Stats()
		if b, err := s.Document().Marshal(); err == nil {
			st.Document = string(b)
		}
	}
	return st
}

// Test is GET /v1/policy/test (`weft policy test`): the verdict the policy in force gives
// a new flow from one host to another on a port.
func (p *Policy) Test(from, to, port string) (api.PolicyTest, error) {
	fa, err := p.lookupHost(from)
	if err != nil {
		return api.PolicyTest{}, fmt.Errorf("--from: %w", err)
	}
	ta, err := p.lookupHost(to)
	if err != nil {
		return api.PolicyTest{}, fmt.Errorf("--to: %w", err)
	}
	pn, proto, err := policy.ParsePortProto(port)
	if err != nil {
		return api.PolicyTest{}, fmt.Errorf("--port: %w", err)
	}
	v := p.engine.Test(fa, ta, pn, proto)
	res := api.PolicyTest{From: fa.String(), To: ta.String(), Port: port, Allowed: v.Allowed(), Decision: v.Decision.String(), Rule: int(v.Rule)}
	if s := p.engine.Current(); s != nil {
		res.Explain = s.Explain(v)
		if v.Rule >= 0 && int(v.Rule) < len(s.Document().Rules) {
			res.RuleName = s.Document().Rules[v.Rule].Name
		}
	} else {
		res.Explain = "allow: no policy"
	}
	return res, nil
}
