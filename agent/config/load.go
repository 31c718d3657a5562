package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"
)

// LoadConfig reads a YAML file over DefaultConfig: the first step, decoding (Resolve is the
// second). Unknown keys and bad values are errors that name the file and line; every key
// and shape problem of the file is reported at once. The lines of the keys are kept, so
// that Resolve's messages name them too.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := parseConfig(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func parseConfig(data []byte, cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return errors.New(yamlMessage(err)) // a syntax error
	}
	if len(root.Content) == 0 {
		return nil // an empty file (or one of comments only) is the defaults
	}
	if err := checkTree(&root, reflect.TypeFor[Config]()); err != nil {
		return err // check.go: unknown keys and wrong shapes, by line and key
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return errors.New(yamlMessage(err))
	}
	cfg.file = recordLines(&root, cfg)
	return nil
}
