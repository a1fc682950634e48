package config_test

import (
	"testing"

	"github.com/acme/shopgate/gateway/config"
)

func TestDocs(t *testing.T) {
	tests := []struct {
		yaml string
		want bool
	}{
		{"", true},
		{"docs: {}", true},
		{"docs: {enabled: true}", true},
		{"docs: {enabled: false}", false},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Docs.On(); got != tt.want {
				t.Errorf("Docs.On() = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := config.Parse([]byte("docs: {enabled: maybe}")); err == nil {
		t.Error("docs.enabled: maybe accepted")
	}
}
