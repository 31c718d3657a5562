package agent

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gatherCounters collects c once and returns the counters of the family name by the value
// of their label label (a counter without that label is left out).
func gatherCounters(t *testing.T, c prometheus.Collector, name, label string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}
