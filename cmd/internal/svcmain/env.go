package svcmain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/acme/shopgate/internal/yamlenv"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix returns the prefix of the environment variables that override the settings of the
// service name's YAML file: "ORDERD__" for orderd, so ORDERD__LOG_LEVEL=debug sets log_level
// and ORDERD__INVENTORY_ADDR=inventory:9103 inventory_addr (internal/yamlenv has the mapping).
// They apply over the file, or over the defaults when there is no file; flags win over both.
func EnvPrefix(name string) string { return strings.ToUpper(name) + yamlenv.Sep }

// decode decodes data (the file; nil when there is none) strictly into cfg, then, when a
// variable of environ starts with prefix, the file with the overrides applied. A variable
// naming no setting is an error naming it.
func decode(data []byte, cfg any, prefix string, environ []string) error {
	if err := decodeStrict(data, cfg); err != nil {
		return err
	}
	if !yamlenv.Any(prefix, environ) {
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if _, err := yamlenv.Apply(&doc, reflect.TypeOf(cfg).Elem(), prefix, environ); err != nil {
		return err
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("environment overrides: %w", err)
	}
	if err := decodeStrict(out, cfg); err != nil {
		return fmt.Errorf("with the environment overrides: %w", err)
	}
	return nil
}

func decodeStrict(data []byte, cfg any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
