package agent

import (
	"testing"

	"github.com/weftnet/weft/agent/config"
)

// TestReloadSteps_KeysExist: every key a reload step declares is a key of the configuration
// (a row of config.Settings or a list of records), so that a renamed setting cannot leave a
// step applying a key no file has; and no key is applied by two steps.
func TestReloadSteps_KeysExist(t *testing.T) {
	steps := (&Agent{}).reloadSteps() // the table only: no step runs
	seen := map[string]string{}
	for _, s := range steps {
		if len(s.keys) == 0 {
			t.Errorf("reload step %s declares no key", s.name)
		}
		for _, k := range s.keys {
			if !config.KnownKey(k) {
				t.Errorf("reload step %s: %q is no key of the configuration", s.name, k)
			}
			if other, ok := seen[k]; ok {
				t.Errorf("%q is applied by both %s and %s", k, other, s.name)
			}
			seen[k] = s.name
		}
	}
	for _, k := range []string{"log_level", "services", "pki.ca", "pki.cert", "pki.blocklist"} {
		if !reloadedKeys(steps)[k] {
			t.Errorf("%s is no longer reloaded", k)
		}
	}
}
