// Command gateway serves the HTTP/JSON API in front of the gRPC services.
//
//	gateway -config gateway.yaml          serve; SIGHUP or a change of the file reloads it,
//	                                      SIGTERM/SIGINT drain (server.drain_delay, a second
//	                                      signal cuts it) and stop
//	gateway routes -config gateway.yaml   print the route table (each value's layer) and exit
//	gateway check [-config gateway.yaml] [-against REF]
//	                                      check the protos' routes and policies (and a config
//	                                      against them; and what changed for clients since the
//	                                      git REF): one problem per line, exit status 1 if any
//	gateway passport-keys new -dir DIR    make a new passport signing key in DIR, print its kid
//	gateway passport-keys jwks [-out FILE] PATH...
//	                                      print (or write atomically) the JWKS the services
//	                                      trust (-passport-jwks) of the keys in PATH (folders
//	                                      or key files)
//
// Serving requires passport.key_dir: the folder of the keys the gateway signs passports with
// (the newest signs; see gateway/passport and the README for rotation).
// The YAML file is described in gateway/config (example.yaml there). Logs are JSON on stderr,
// one access log line per request (buffered: written in batches, at most 200ms late; lines
// are dropped, and counted in gateway_access_log_dropped_total, if stderr falls 4 MiB behind).
// $GATEWAY_REDIS_PASSWORD holds the rate limiter's Redis password when rate_limiting.backend
// is redis ($GATEWAY_REDIS_SENTINEL_PASSWORD the sentinels', with redis.master_name). Variables GATEWAY__SECTION__KEY override settings of the file (gateway/config
// EnvPrefix), when serving, on each reload, and in `gateway routes` and `gateway check`.
// is redis. Tracing follows the standard OTEL_* variables (internal/telemetry): off unless
// OTEL_TRACES_EXPORTER is otlp or console; service.name defaults to "gateway".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/acme/shopgate/cmd/internal/gwmain"
	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/linebuf"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/gateway/server"
	"github.com/acme/shopgate/gateway/traffic"
	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/acme/shopgate/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// usage is what -h prints before the serving flags: every subcommand, one line each.
const usage = `usage:
  gateway [-config FILE]                 serve; SIGHUP or a file change reloads, SIGTERM/SIGINT stop
  gateway routes [-config FILE]          print the route table and exit
  gateway check [-config FILE] [-against REF]
                                         check the protos' routes and policies (and FILE against
                                         them; and what changed for clients since the git REF)
  gateway passport-keys new -dir DIR     make a new passport signing key in DIR, print its kid
  gateway passport-keys jwks [-out FILE] PATH...
                                         print (or write) the JWKS of the passport keys in PATH
Each subcommand takes -h. Flags of serving:
`

// run is the whole program: it returns when ctx ends (after a graceful shutdown) or on error.
// A -h (of the command or a subcommand) prints the usage and returns nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := serveOrSubcommand(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the usage is printed
	}
	return err
}

func serveOrSubcommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.PrintIfRequested(args, stdout, "gateway") {
		return nil
	}
	if len(args) > 0 && args[0] == "routes" {
		return runRoutes(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check" {
		return runCheck(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "passport-keys" {
		return runPassportKeys(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	path := fs.String("config", "gateway.yaml", "path of the YAML configuration")
	buildinfo.Flag(fs) // answered above
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 { // a mistyped subcommand must not start a server
		return fmt.Errorf("unknown subcommand %q (gateway -h lists them)", fs.Arg(0))
	}
	logs := &lockedWriter{w: stderr} // the logger and the access log write lines to it from many goroutines
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if cfg.Passport.KeyDir == "" {
		return fmt.Errorf("%s: passport.key_dir is required: the folder of the passport signing keys (`gateway passport-keys new -dir DIR` makes one)", *path)
	}
	// The access log is buffered (gateway/linebuf): a request costs a copy of its line, and a
	// stalled stderr holds no request. What is buffered is written on the way out.
	access := linebuf.New(logs, linebuf.Options{})
	defer func() { // a stuck stderr must not hold the exit
		ctx, cancel := context.WithTimeout(context.Background(), accessFlushTimeout)
		defer cancel()
		_ = access.Shutdown(ctx)
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector(),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gateway_access_log_dropped_total",
			Help: "Access log lines dropped because stderr fell more than 4 MiB behind.",
		}, func() float64 { return float64(access.Dropped()) }))
	api, err := shopapi.OpenAPI()
	if err != nil {
		return err
	}
	tr, stopTracing, err := telemetry.Start(ctx, telemetry.Options{Role: "gateway"}, logger)
	if err != nil {
		return err
	}
	defer stopTracing()
	srv, err := server.New(cfg, server.Options{Logger: logger, AccessLogWriter: access, Registerer: reg, Services: shopapi.Services(), OpenAPI: api,
		TracerProvider: tr.Provider})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before the listening line: a supervisor may reload at once
	defer signal.Stop(hup)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("listening: %w", err)
	}
	admin, err := gwmain.ListenAdmin(cfg, logger) // server.admin_listen, logged as "gateway admin listening"
	if err != nil {
		_ = ln.Close()
		_ = srv.Close()
		return err
	}
	again, stopWatching := secondSignal() // cuts the drain delay short
	defer stopWatching()
	logger.Info("gateway listening", slog.String("addr", ln.Addr().String()), slog.String("config", *path))

	loop := gwmain.Loop{
		Server: srv, Logger: logger, Path: *path, ShutdownTimeout: cfg.Server.ShutdownTimeout,
		Load:       func() (*config.Config, error) { return loadConfig(*path) },
		Watch:      cfg.Server.WatchConfig,
		DrainDelay: cfg.Server.Drain(), Again: again, Admin: admin,
	}
	return loop.Serve(ctx, ln, hup)
}

// accessFlushTimeout bounds how long the exit waits for the access log's last lines.
const accessFlushTimeout = 5 * time.Second

// EnvRedisPassword names the environment variable that holds the Redis password of the rate
// limiter and of the response cache (never written in the YAML file).
const EnvRedisPassword = "GATEWAY_REDIS_PASSWORD"

// EnvRedisSentinelPassword names the environment variable that holds the password of the
// Redis sentinels (redis.master_name set), for the same sections.
const EnvRedisSentinelPassword = "GATEWAY_REDIS_SENTINEL_PASSWORD"

// loadConfig reads the file with the environment's overrides and adds the secrets that come
// from the environment.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.LoadEnv(path, os.Environ())
	if err != nil {
		return nil, err
	}
	cfg.RateLimiting.Redis.Password = os.Getenv(EnvRedisPassword)
	cfg.ResponseCache.Redis.Password = cfg.RateLimiting.Redis.Password // the same Redis in practice
	cfg.RateLimiting.Redis.SentinelPassword = os.Getenv(EnvRedisSentinelPassword)
	cfg.ResponseCache.Redis.SentinelPassword = cfg.RateLimiting.Redis.SentinelPassword
	return cfg, nil
}

// runRoutes prints the route table of a configuration.
func runRoutes(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway routes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "gateway.yaml", "path of the YAML configuration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	table, err := routes.Build(cfg, shopapi.Descriptors())
	if err != nil {
		return err
	}
	if err := printRoutes(stdout, table, func(svc string) bool { return len(cfg.Upstreams[svc].Addresses) > 0 }); err != nil {
		return err
	}
	return printPools(stdout, cfg.Upstreams)
}

// printPools prints the pools and traffic rules of the upstreams that have named pools, after
// a blank line; nothing when none has.
func printPools(w io.Writer, ups map[string]config.Upstream) error {
	var names []string
	for name, u := range ups {
		if len(u.Pools) > 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSERVICE\tPOOL\tADDRESSES")
	for _, name := range names {
		u := ups[name]
		for _, pool := range u.Traffic().PoolNames() {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", name, pool, strings.Join(u.Addrs()[pool], ","))
		}
	}
	fmt.Fprintln(tw, "\nSERVICE\tRULE\tMETHODS\tMATCH\tPOOL\tFALLBACK")
	for _, name := range names {
		for i, r := range ups[name].Rules {
			methods, fallback := "*", "-"
			if len(r.Methods) > 0 {
				methods = strings.Join(r.Methods, ",")
			}
			if r.Fallback != "" {
				fallback = r.Fallback
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", name, i+1, methods, matchOf(r), r.Pool, fallback)
		}
		fmt.Fprintf(tw, "%s\t-\t*\tthe rest\t%s\t-\n", name, traffic.DefaultPool)
	}
	return tw.Flush()
}

// matchOf describes a rule's matcher in one short phrase.
func matchOf(r traffic.Rule) string {
	switch {
	case r.Weight != nil:
		return fmt.Sprintf("weight %g%% (sticky)", *r.Weight)
	case r.Header != nil:
		return fmt.Sprintf("header %s=%s", r.Header.Name, r.Header.Value)
	case r.Subjects != nil:
		return "subject " + strings.Join(r.Subjects, ",")
	case r.Claim != nil:
		return fmt.Sprintf("claim %s=%s", r.Claim.Name, r.Claim.Value)
	default:
		return "cidrs " + strings.Join(r.CIDRs, ",")
	}
}

// printRoutes prints one row per route: each policy value followed by the layer it came from
// ("2s (proto-service)"), and UPSTREAM "none" for a route whose service has no addresses.
func printRoutes(w io.Writer, table *routes.Table, hasUpstream func(string) bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tPATH\tRPC\tUPSTREAM\tAUTH\tROLES\tRATE LIMIT\tTIMEOUT\tIDEMPOTENT\tFALLBACK\tDELEGATES")
	entries := table.Entries(hasUpstream)
	for i, r := range table.Routes() {
		p, from := r.Policy, entries[i].Policy
		cell := func(field, v string) string { return v + " (" + string(from[field].From) + ")" }
		roles := "-"
		if len(p.Roles) > 0 {
			roles = strings.Join(p.Roles, ",")
		}
		limit := "none"
		if p.RateLimit.Enabled() {
			limit = fmt.Sprintf("%d/%s burst %d", p.RateLimit.Requests, p.RateLimit.Per, p.RateLimit.Burst)
		}
		fallback := "-"
		if p.Fallback != nil {
			fallback = fmt.Sprintf("%d %s", p.Fallback.HTTPStatus, p.Fallback.JSONBody)
		}
		delegates := "-"
		if len(p.Delegates) > 0 {
			delegates = strings.Join(p.Delegates, ",")
		}
		upstream := "yes"
		if !entries[i].Upstream {
			upstream = "none"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.HTTPMethod, r.Path, r.RPC, upstream,
			cell("auth", p.Auth.String()), cell("roles", roles), cell("rate_limit", limit), cell("timeout", p.Timeout.String()),
			cell("idempotent", fmt.Sprint(p.Idempotent)), cell("fallback", fallback), cell("delegates", delegates))
	}
	return tw.Flush()
}

// lockedWriter serializes writes to w: the logger and the access log share it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
