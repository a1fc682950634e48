package server_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/server"
	"github.com/acme/shopgate/internal/shopapi"
)

// TestArchitectureDocShowsThePipeline keeps docs/ARCHITECTURE.md's table of stages the one the
// code declares: the document must hold Pipeline's listing verbatim.
func TestArchitectureDocShowsThePipeline(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Services: shopapi.Services()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	want := srv.Pipeline().String()
	if !strings.Contains(string(doc), want) {
		t.Errorf("docs/ARCHITECTURE.md does not show the pipeline as declared; put this table there:\n%s", want)
	}
}
