package events

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// authOptions returns the nats.go options of cfg's credentials (User and PasswordFile,
// TokenFile, CredsFile or NKeyFile), followed by a check that tells a refused login from a
// broker not up yet. Append them after every other option: the check connects once with all
// of them. A configuration error (two methods, a missing file) comes out of nats.Connect.
//
// The files are read on each connection nats.go makes, reconnections included, so that a
// rotated password, token or credentials file applies from the next reconnection; an nkey's
// public key is read once, its seed on each connection. A file that cannot be read at a
// reconnection leaves the last value read in use (and a warning in the log).
func authOptions(ctx context.Context, cfg Config) []nats.Option {
	method, err := cfg.authMethod()
	if err != nil {
		return []nats.Option{failOption(err)}
	}
	log := cfg.Logger
	var opts []nats.Option
	switch {
	case cfg.User != "":
		password := &fileSecret{path: cfg.PasswordFile, what: "password", log: log}
		if _, err := password.read(); err != nil {
			return []nats.Option{failOption(err)}
		}
		opts = append(opts, nats.UserInfoHandler(func() (string, string) { return cfg.User, password.get() }))
	case cfg.TokenFile != "":
		token := &fileSecret{path: cfg.TokenFile, what: "token", log: log}
		if _, err := token.read(); err != nil {
			return []nats.Option{failOption(err)}
		}
		opts = append(opts, nats.TokenHandler(token.get))
	case cfg.CredsFile != "":
		if _, err := os.Stat(cfg.CredsFile); err != nil {
			return []nats.Option{failOption(fmt.Errorf("broker credentials file: %w", err))}
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return []nats.Option{failOption(fmt.Errorf("broker nkey seed file %s: %w", cfg.NKeyFile, err))}
		}
		opts = append(opts, opt)
	}
	if method != "" {
		opts = append(opts, func(o *nats.Options) error {
			if o.InProcessServer != nil {
				return errors.New("broker credentials apply to an external broker (-broker-url): an embedded broker is reached in-process, without them")
			}
			return nil
		})
	}
	return append(opts,
		// A refused login at a reconnection (a password rotated on the broker before the
		// file) is retried, with the files read again, instead of closing the connection
		// for good; it is logged.
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if isAuthError(err) {
				log.Error("the broker refused the credentials; retrying", "auth", describeAuth(method), "err", err)
				return
			}
			log.Warn("broker error", "err", err)
		}),
		checkLogin(ctx, cfg.ReconnectWait, method))
}

// isAuthError reports whether err is the broker refusing the connection's credentials.
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrNkeysNotSupported)
}

// checkLogin is the option that connects once, with every option before it and without
// retries, before nats.Connect makes the real connection. With RetryOnFailedConnect nats.go
// keeps retrying a login the broker refuses, and the caller only sees its requests time out;
// this check returns the refusal as an error instead. It waits for an unreachable broker
// (first, then doubling up to 2s) until ctx is done, then leaves the outcome to the real
// connection. An in-process connection has no credentials to check.
func checkLogin(ctx context.Context, first time.Duration, method string) nats.Option {
	return func(o *nats.Options) error {
		if o.InProcessServer != nil {
			return nil
		}
		probe := *o
		probe.Name = o.Name + " (login check)"
		probe.AllowReconnect, probe.RetryOnFailedConnect = false, false
		probe.ClosedCB, probe.DisconnectedCB, probe.DisconnectedErrCB, probe.ReconnectedCB = nil, nil, nil, nil
		probe.ConnectedCB, probe.AsyncErrorCB, probe.ReconnectErrCB, probe.DiscoveredServersCB = nil, nil, nil, nil
		probe.LameDuckModeHandler = nil
		wait := first
		for {
			nc, err := probe.Connect()
			if err == nil {
				nc.Close()
				return nil
			}
			if isAuthError(err) {
				return fmt.Errorf("the broker refused the credentials (%s): %w", describeAuth(method), err)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			wait = min(2*wait, 2*time.Second)
		}
	}
}

// failOption is an option that fails nats.Connect with err.
func failOption(err error) nats.Option {
	return func(*nats.Options) error { return fmt.Errorf("broker credentials: %w", err) }
}

// authMethod returns the credentials cfg configures ("user", "token", "creds", "nkey" or ""),
// or an error when it names more than one or a user without a password file.
func (c Config) authMethod() (string, error) {
	var methods []string
	if c.User != "" || c.PasswordFile != "" {
		if c.User == "" || c.PasswordFile == "" {
			return "", errors.New("a user (-broker-user) and a password file (-broker-password-file) go together")
		}
		methods = append(methods, "user")
	}
	if c.TokenFile != "" {
		methods = append(methods, "token")
	}
	if c.CredsFile != "" {
		methods = append(methods, "creds")
	}
	if c.NKeyFile != "" {
		methods = append(methods, "nkey")
	}
	switch len(methods) {
	case 0:
		return "", nil
	case 1:
		return methods[0], nil
	}
	return "", fmt.Errorf("choose one way to authenticate to the broker, not %s", strings.Join(methods, " and "))
}

// describeAuth names method for an error message, without any secret.
func describeAuth(method string) string {
	switch method {
	case "user":
		return "user and password file"
	case "token":
		return "token file"
	case "creds":
		return "credentials file"
	case "nkey":
		return "nkey seed file"
	}
	return "no credentials configured: -broker-user, -broker-token-file, -broker-creds or -broker-nkey"
}

// fileSecret is a secret held in a file, read again at each get; the last value read stays in
// use when the file cannot be read.
type fileSecret struct {
	path, what string
	log        *slog.Logger
	mu         sync.Mutex
	last       string
}

// read reads the file: its content without surrounding white space, which must not be empty.
func (s *fileSecret) read() (string, error) {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return "", fmt.Errorf("broker %s file: %w", s.what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("broker %s file %s is empty", s.what, s.path)
	}
	s.mu.Lock()
	s.last = v
	s.mu.Unlock()
	return v, nil
}

// get returns the file's secret now, else the last one read.
func (s *fileSecret) get() string {
	v, err := s.read()
	if err == nil {
		return v
	}
	s.log.Warn("reading the broker "+s.what+" file; using the last one read", "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// registerAuthFlags defines -broker-replicas, -broker-user, -broker-password-file,
// -broker-token-file, -broker-creds and -broker-nkey on fs, into c.
func registerAuthFlags(fs *flag.FlagSet, c *Config) {
	fs.IntVar(&c.Replicas, "broker-replicas", c.Replicas, "replicas of the JetStream stream and its consumers on a NATS cluster: 3 survives the loss of one node of three (default 1)")
	fs.StringVar(&c.User, "broker-user", c.User, "user name for the broker, with -broker-password-file; default: none")
	fs.StringVar(&c.PasswordFile, "broker-password-file", c.PasswordFile, "file holding the password of -broker-user (read at each connection); default: none")
	fs.StringVar(&c.TokenFile, "broker-token-file", c.TokenFile, "file holding a token for the broker (read at each connection); default: none")
	fs.StringVar(&c.CredsFile, "broker-creds", c.CredsFile, "NATS credentials file (user JWT and nkey seed) for the broker (read at each connection); default: none")
	fs.StringVar(&c.NKeyFile, "broker-nkey", c.NKeyFile, "file holding an nkey user seed (SU...) for the broker; default: none")
}
