package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultBrokerDir is where the single-process stack keeps the embedded broker's data.
const DefaultBrokerDir = "./data/broker"

// EmbeddedConfig configures an embedded NATS JetStream server. Its zero value means the defaults.
type EmbeddedConfig struct {
	// Listen is a TCP address ("127.0.0.1:0" for a free port) on which the server also accepts
	// clients from other processes. Default "": no listener at all, in-process connections only.
	Listen string
	// MaxStore bounds the file storage. Default 1 GiB.
	MaxStore int64
	// StartTimeout bounds the server's start. Default 10s.
	StartTimeout time.Duration
}

// Embedded is a NATS JetStream server running inside this process, with file storage in a
// directory, that hands out Broker connections to the services of the process. Restart replaces
// the server with a new one on the same directory; connections reconnect to it by themselves.
type Embedded struct {
	dir string
	cfg EmbeddedConfig

	mu  sync.Mutex
	srv *server.Server // nil while stopped
}

// StartEmbedded starts a JetStream server storing its data under dir (DefaultBrokerDir when
// empty). Close stops it.
func StartEmbedded(dir string, cfg EmbeddedConfig) (*Embedded, error) {
	if dir == "" {
		dir = DefaultBrokerDir
	}
	if cfg.MaxStore == 0 {
		cfg.MaxStore = 1 << 30
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.MaxStore < 0 || cfg.StartTimeout < 0 {
		return nil, errors.New("starting embedded broker: negative limit")
	}
	e := &Embedded{dir: dir, cfg: cfg}
	if err := e.start(); err != nil {
		return nil, fmt.Errorf("starting embedded broker: %w", err)
	}
	return e, nil
}

func (e *Embedded) start() error {
	opts := &server.Options{
		ServerName:         "shopgate-embedded",
		JetStream:          true,
		StoreDir:           e.dir,
		JetStreamMaxStore:  e.cfg.MaxStore,
		JetStreamMaxMemory: 64 << 20,
		DontListen:         e.cfg.Listen == "",
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         1 << 20,
	}
	if e.cfg.Listen != "" {
		host, port, err := net.SplitHostPort(e.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen address: %w", err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return fmt.Errorf("listen port: %w", err)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	srv.Start()
	if !srv.ReadyForConnections(e.cfg.StartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("not ready after %v", e.cfg.StartTimeout)
	}
	e.mu.Lock()
	if e.cfg.Listen != "" {
		// Keep the port across restarts, so that clients find the server again.
		e.cfg.Listen = srv.Addr().String()
	}
	e.srv = srv
	e.mu.Unlock()
	return nil
}

// InProcessConn implements nats.InProcessConnProvider on the server running now, so that a
// connection survives Restart.
func (e *Embedded) InProcessConn() (net.Conn, error) {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil, errors.New("embedded broker stopped")
	}
	return srv.InProcessConn()
}

// Connect returns a Broker connection to the embedded server, in process (no socket). Every
// service of the process takes its own.
func (e *Embedded) Connect(ctx context.Context, cfg Config) (*JetStream, error) {
	return connect(ctx, cfg, "nats://in-process", e)
}

// ClientURL returns the URL other processes use when Listen was set, "" otherwise.
func (e *Embedded) ClientURL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.Listen == "" {
		return ""
	}
	return "nats://" + e.cfg.Listen
}

// Stop shuts the server down, keeping its data; Start or Restart brings it back. Idempotent.
func (e *Embedded) Stop() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Start starts a stopped server again on the same directory (and port, with Listen).
func (e *Embedded) Start() error {
	e.mu.Lock()
	running := e.srv != nil
	e.mu.Unlock()
	if running {
		return nil
	}
	if err := e.start(); err != nil {
		return fmt.Errorf("restarting embedded broker: %w", err)
	}
	return nil
}

// Restart stops the server and starts a new one on the same directory.
func (e *Embedded) Restart() error {
	e.Stop()
	return e.Start()
}

// Close stops the server for good. Close the connections first.
func (e *Embedded) Close() error {
	e.Stop()
	return nil
}
