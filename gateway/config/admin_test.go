package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
)

func TestDrainAndAdminListen(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantErr   string // "" means valid
		wantDelay time.Duration
		wantAdmin string
	}{
		{name: "defaults", yaml: "", wantDelay: 5 * time.Second},
		{name: "delay set", yaml: "server: {drain_delay: 12s}", wantDelay: 12 * time.Second},
		{name: "negative delay is none", yaml: "server: {drain_delay: -1s}", wantDelay: 0},
		{name: "admin listener", yaml: "server: {admin_listen: '0.0.0.0:9090'}", wantDelay: 5 * time.Second, wantAdmin: "0.0.0.0:9090"},
		{name: "admin on a free port", yaml: "listen: 127.0.0.1:0\nserver: {admin_listen: '127.0.0.1:0'}", wantDelay: 5 * time.Second, wantAdmin: "127.0.0.1:0"},
		{name: "admin without port", yaml: "server: {admin_listen: localhost}", wantErr: `server.admin_listen: "localhost" is not host:port`},
		{name: "admin empty port", yaml: "server: {admin_listen: 'localhost:'}", wantErr: `server.admin_listen: "localhost:" is not host:port`},
		{name: "admin same as listen", yaml: "listen: 127.0.0.1:8080\nserver: {admin_listen: '127.0.0.1:8080'}", wantErr: "is the public listen address too"},
		{name: "delay not a duration", yaml: "server: {drain_delay: soon}", wantErr: "line 1: cannot unmarshal !!str `soon` into time.Duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Server.Drain(); got != tt.wantDelay {
				t.Errorf("Drain() = %s, want %s", got, tt.wantDelay)
			}
			if cfg.Server.AdminListen != tt.wantAdmin {
				t.Errorf("AdminListen = %q, want %q", cfg.Server.AdminListen, tt.wantAdmin)
			}
		})
	}
}
