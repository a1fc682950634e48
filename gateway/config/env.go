package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/acme/shopgate/internal/yamlenv"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of an environment variable that overrides a setting of the file:
// GATEWAY__SERVER__READ_TIMEOUT=10s sets server.read_timeout, GATEWAY__RATE_LIMITING__REDIS__ADDR
// rate_limiting.redis.addr, GATEWAY__ROUTES__SHOP_ORDER_V1_ORDERSERVICE__TIMEOUT=3s the timeout of
// routes["shop.order.v1.OrderService"] (see internal/yamlenv for the whole mapping).
const EnvPrefix = "GATEWAY__"

// LoadEnv is Load with the overrides of environ (os.Environ's form) applied: see ParseEnv.
func LoadEnv(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := ParseEnv(data, environ)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseEnv is Parse after the variables of environ named EnvPrefix+"..." have set the settings
// they name in the document (internal/yamlenv): the file is decoded strictly first (its own
// errors keep their line numbers), then the overridden document is decoded, defaulted and
// validated as a file would be. A variable naming no setting is an error naming it.
func ParseEnv(data []byte, environ []string) (*Config, error) {
	var cfg Config
	if err := decodeStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	if !yamlenv.Any(EnvPrefix, environ) {
		cfg.applyDefaults()
		if err := cfg.validate(); err != nil {
			return nil, err
		}
		return &cfg, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	ovs, err := yamlenv.Apply(&doc, reflect.TypeOf(cfg), EnvPrefix, environ)
	if err != nil {
		return nil, err
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("environment overrides: %w", err)
	}
	cfg = Config{}
	if err := decodeStrict(out, &cfg); err != nil {
		return nil, fmt.Errorf("with the environment overrides %s: %w", names(ovs), err)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// names lists the overrides' variables, comma-separated.
func names(ovs []yamlenv.Override) string {
	var b []byte
	for i, o := range ovs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, o.Name...)
	}
	return string(b)
}

// decodeStrict decodes the first document of data into cfg; unknown keys are errors, an empty
// document is not.
func decodeStrict(data []byte, cfg *Config) error {
	cfg.Server.WatchConfig = true // the default of a file that leaves it out
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, errEOF) {
		return err
	}
	return nil
}
