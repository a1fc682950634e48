package svcmain

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// svcConfig is shaped like orderd's: the shared section inline, one setting of its own.
type svcConfig struct {
	Config        `yaml:",inline"`
	InventoryAddr string `yaml:"inventory_addr"`
}

func TestLoadEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "orderd.yaml")
	if err := os.WriteFile(file, []byte("log_level: warn\ninventory_addr: file:9103\nshutdown_timeout: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    svcConfig // the fields checked: LogLevel, InventoryAddr, ShutdownTimeout
		wantErr string
	}{
		{name: "the file over the defaults", args: []string{"-config", file},
			want: svcConfig{Config: Config{LogLevel: "warn", ShutdownTimeout: 3 * time.Second}, InventoryAddr: "file:9103"}},
		{name: "the environment over the file", args: []string{"-config", file},
			env:  map[string]string{"ORDERD__INVENTORY_ADDR": "env:9103", "ORDERD__SHUTDOWN_TIMEOUT": "9s"},
			want: svcConfig{Config: Config{LogLevel: "warn", ShutdownTimeout: 9 * time.Second}, InventoryAddr: "env:9103"}},
		{name: "the environment over the defaults, without a file",
			env:  map[string]string{"ORDERD__LOG_LEVEL": "debug"},
			want: svcConfig{Config: Config{LogLevel: "debug", ShutdownTimeout: DefaultShutdownTimeout}, InventoryAddr: "default:9103"}},
		{name: "the flags over the environment", args: []string{"-config", file, "-log-level", "error"},
			env:  map[string]string{"ORDERD__LOG_LEVEL": "debug"},
			want: svcConfig{Config: Config{LogLevel: "error", ShutdownTimeout: 3 * time.Second}, InventoryAddr: "file:9103"}},
		{name: "another service's variables are not ours", args: []string{"-config", file},
			env:  map[string]string{"PAYMENTD__LOG_LEVEL": "debug"},
			want: svcConfig{Config: Config{LogLevel: "warn", ShutdownTimeout: 3 * time.Second}, InventoryAddr: "file:9103"}},
		{name: "a typo is an error naming the variable", args: []string{"-config", file},
			env: map[string]string{"ORDERD__INVENTORY_ADRR": "x"}, wantErr: "ORDERD__INVENTORY_ADRR"},
		{name: "a flag-only setting cannot be set", env: map[string]string{"ORDERD__EVENTS": "x"}, wantErr: "ORDERD__EVENTS"},
		{name: "a bad value names the variable", env: map[string]string{"ORDERD__SHUTDOWN_TIMEOUT": "later"}, wantErr: "ORDERD__SHUTDOWN_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := svcConfig{Config: Defaults("127.0.0.1:9101"), InventoryAddr: "default:9103"}
			err := Load("orderd", tt.args, io.Discard, &cfg, func(fs *flag.FlagSet) {
				cfg.ServerFlags(fs)
				fs.StringVar(&cfg.InventoryAddr, "inventory-addr", cfg.InventoryAddr, "")
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LogLevel != tt.want.LogLevel || cfg.InventoryAddr != tt.want.InventoryAddr || cfg.ShutdownTimeout != tt.want.ShutdownTimeout {
				t.Errorf("got log_level %q inventory_addr %q shutdown_timeout %s, want %q %q %s", cfg.LogLevel, cfg.InventoryAddr,
					cfg.ShutdownTimeout, tt.want.LogLevel, tt.want.InventoryAddr, tt.want.ShutdownTimeout)
			}
		})
	}
}
