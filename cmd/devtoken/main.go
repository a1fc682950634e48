// Command devtoken prints a development JWT that the dev stack accepts, signed by the
// development key (internal/devkey), which it creates under -keys when missing:
//
//	go run ./cmd/devtoken -sub alice -roles customer
//	go run ./cmd/devtoken -sub root -roles admin,customer -ttl 15m
//	go run ./cmd/devtoken -sub alice -ttl -1m       # already expired
//	go run ./cmd/devtoken -sub dave -claim tier=beta   # an extra claim (a traffic rule's)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/acme/shopgate/internal/devkey"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, mints the token and prints it on stdout; it returns the exit code (2 for a
// usage error, 1 for a failure).
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject (`sub`) of the token; required")
	roles := fs.String("roles", "", "comma-separated roles, e.g. customer or admin,customer")
	ttl := fs.Duration("ttl", devkey.DefaultTTL, "lifetime; negative mints an expired token")
	aud := fs.String("aud", devkey.Audience, "audience (`aud`)")
	iss := fs.String("iss", devkey.Issuer, "issuer (`iss`)")
	keys := fs.String("keys", devkey.DefaultDir, "folder of the development key (created if missing)")
	var extra map[string]string
	fs.Func("claim", "an extra string claim `name=value` (repeatable), e.g. tier=beta", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return errors.New("want name=value")
		}
		if extra == nil {
			extra = map[string]string{}
		}
		extra[name] = value
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *sub == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: devtoken -sub NAME [-roles a,b] [-ttl 1h] [-aud A] [-iss I] [-claim name=value]... [-keys DIR]")
		return 2
	}
	if *ttl == 0 {
		fmt.Fprintln(stderr, "devtoken: -ttl must not be 0")
		return 2
	}
	key, err := devkey.LoadOrCreate(*keys)
	if err != nil {
		fmt.Fprintf(stderr, "devtoken: %v\n", err)
		return 1
	}
	var roleList []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roleList = append(roleList, r)
		}
	}
	token, err := key.Mint(devkey.Claims{Subject: *sub, Roles: roleList, Issuer: *iss, Audience: *aud, TTL: *ttl, Extra: extra})
	if err != nil {
		fmt.Fprintf(stderr, "devtoken: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, token)
	return 0
}
