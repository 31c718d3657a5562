package catalog

// The persisted local registrations (CatalogConfig.StatePath): a versioned JSON file,
// loaded by NewCatalog and written atomically when they change.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

type stateFile struct {
	Version  int       `json:"version"`
	Services []Service `json:"services"`
}

func loadServices(path string) ([]Service, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: load services: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("catalog: load services from %s: %w", path, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("catalog: load services from %s: unknown version %d", path, st.Version)
	}
	seen := make(map[string]bool)
	out := make([]Service, 0, len(st.Services))
	for _, s := range st.Services {
		s = s.Normalized()
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("catalog: load services from %s: %w", path, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("catalog: load services from %s: %q twice", path, s.Name)
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

// saveServices writes the file atomically: a temporary file in the same directory,
// synced, then renamed over the old one.
func saveServices(path string, services []Service) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(stateFile{Version: 1, Services: services}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save services: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save services: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save services: %w", err)
	}
	return nil
}
