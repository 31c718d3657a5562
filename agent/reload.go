package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
)

// Reload (SIGHUP, `systemctl reload weft`) applies what can change without a restart. The
// new configuration comes from the source the command gave (the file again, with the flags
// over it); each reload step compares the running configuration with it, applies its part
// and says what it changed. Each step declares the keys it applies; a changed setting that no
// step declares needs a restart, and is named in the log, not applied.
//
// Steps run in order; one that fails is logged and the others still run. A step applies to
// the running agent and to a.cfg (under a.mu) together, so that a second reload compares
// with what runs.

// reloadStep is one part of a reload: it applies its part of next and returns what changed
// ("" when nothing did).
type reloadStep struct {
	name string
	// keys are the YAML keys (config.Settings, or a list of records such as services) the
	// step applies; a change of any other key is only reported as needing a restart.
	keys  []string
	apply func(next *config.Config) (string, error)
}

// reloadSteps are the reload steps, in order. A feature that can reload adds its step here
// with the keys it applies (certificates and policy: their files are read again by their own
// step).
func (a *Agent) reloadSteps() []reloadStep {
	return []reloadStep{
		{name: "log_level", keys: []string{"log_level"}, apply: a.reloadLogLevel},
		{name: "services", keys: []string{"services"}, apply: a.reloadServices},
		{name: "pki", keys: []string{"pki.ca", "pki.cert", "pki.blocklist"}, apply: a.reloadPKIStep},
	}
}

// reloadedKeys are the keys some step applies.
func reloadedKeys(steps []reloadStep) map[string]bool {
	keys := map[string]bool{}
	for _, s := range steps {
		for _, k := range s.keys {
			keys[k] = true
		}
	}
	return keys
}

// SetReload gives the agent the source of a reloaded configuration and the level its logger
// logs at (NewLogging). Without it Reload fails.
func (a *Agent) SetReload(load func() (config.Config, error), level *slog.LevelVar) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reloadSrc, a.level = load, level
}

// Reload reads the configuration again and applies what can change at run time. It returns
// what it reloaded (one line per change) and what would need a restart.
func (a *Agent) Reload() (changed, needRestart []string, err error) {
	a.mu.Lock()
	load := a.reloadSrc
	a.mu.Unlock()
	if load == nil {
		// No configuration source (an agent built in a test): re-read the files of the
		// running configuration (pki) and change nothing else.
		a.mu.Lock()
		cfg := a.cfg
		a.mu.Unlock()
		load = func() (config.Config, error) { return cfg, nil }
	}
	sdNotify("RELOADING=1")
	defer sdNotify("READY=1")
	next, err := load()
	if err != nil {
		a.log.Error("reload: configuration refused; nothing changed", "err", err)
		return nil, nil, fmt.Errorf("reload: %w", err)
	}
	stateDefaults(&next) // the pki and gossip key files of the state directory, as at start
	var errs []error
	steps := a.reloadSteps()
	for _, s := range steps {
		what, err := s.apply(&next)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			a.log.Error("reload step failed", "step", s.name, "err", err)
		case what != "":
			changed = append(changed, what)
		}
	}
	a.mu.Lock()
	cur := a.cfg
	a.mu.Unlock()
	reloaded := reloadedKeys(steps)
	for _, s := range config.Settings {
		if reloaded[s.Key] || s.Global {
			continue
		}
		if !reflect.DeepEqual(s.Field(&cur), s.Field(&next)) {
			needRestart = append(needRestart, s.Key)
		}
	}
	if !reflect.DeepEqual(config.WithoutLines(cur.Peers), config.WithoutLines(next.Peers)) {
		needRestart = append(needRestart, "peers")
	}
	if len(changed) == 0 {
		a.log.Info("reloaded: nothing changed", "restart_needed_for", strings.Join(needRestart, ","))
	} else {
		a.log.Info("reloaded", "changed", strings.Join(changed, "; "), "restart_needed_for", strings.Join(needRestart, ","))
	}
	if len(needRestart) > 0 {
		a.log.Warn("reload: these settings changed but take effect only after a restart", "keys", strings.Join(needRestart, ","))
	}
	return changed, needRestart, errors.Join(errs...)
}

func (a *Agent) reloadLogLevel(next *config.Config) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.cfg.LogLevel
	if next.LogLevel == old {
		return "", nil
	}
	if a.level == nil {
		return "", errors.New("the logger's level cannot be changed")
	}
	a.level.Set(parseLevel(next.LogLevel))
	a.cfg.LogLevel = next.LogLevel
	return fmt.Sprintf("log_level %s → %s", old, next.LogLevel), nil
}

// reloadServices registers the services of the new file that are new or changed and
// deregisters those the file no longer lists (services registered by CLI or API stay).
func (a *Agent) reloadServices(next *config.Config) (string, error) {
	a.mu.Lock()
	old := a.cfg.Services
	a.mu.Unlock()
	if reflect.DeepEqual(old, next.Services) {
		return "", nil
	}
	if a.cat == nil {
		return "", errors.New("the catalog is not running")
	}
	keep := map[string]catalog.Service{}
	for _, s := range next.Services {
		keep[s.Name] = s
	}
	var added, removed, updated []string
	var errs []error
	for _, s := range old {
		if _, ok := keep[s.Name]; !ok {
			if err := a.cat.cat.Deregister(s.Name); err != nil {
				errs = append(errs, fmt.Errorf("deregister %s: %w", s.Name, err))
				continue
			}
			removed = append(removed, s.Name)
		}
	}
	was := map[string]catalog.Service{}
	for _, s := range old {
		was[s.Name] = s
	}
	for _, s := range next.Services {
		prev, had := was[s.Name]
		if had && reflect.DeepEqual(prev, s) {
			continue
		}
		if err := a.cat.cat.Register(s); err != nil {
			errs = append(errs, fmt.Errorf("register %s: %w", s.Name, err))
			continue
		}
		if had {
			updated = append(updated, s.Name)
		} else {
			added = append(added, s.Name)
		}
	}
	a.mu.Lock()
	a.cfg.Services = next.Services
	a.mu.Unlock()
	var parts []string
	for _, p := range []struct {
		what  string
		names []string
	}{{"added", added}, {"updated", updated}, {"removed", removed}} {
		if len(p.names) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.names, ","))
		}
	}
	if len(parts) == 0 {
		return "", errors.Join(errs...)
	}
	return "services " + strings.Join(parts, ", "), errors.Join(errs...)
}
