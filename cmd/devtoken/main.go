// Command devtoken prints a development JWT that the dev stack accepts, signed by the
// development key (internal/devkey) under -keys:
//
//	go run ./cmd/devtoken -sub alice -roles customer
//	go run ./cmd/devtoken -sub root -roles admin,customer -ttl 15m
//	go run ./cmd/devtoken -sub alice -ttl -1m       # already expired
//	go run ./cmd/devtoken -sub dave -claim tier=beta   # an extra claim (a traffic rule's)
//	go run ./cmd/devtoken -init                     # only make the key (for a separate gateway)
//
// Before minting it checks that the gateway trusts the key: the key's kid must be in the JWKS
// that -jwks names, by default the one `make run` publishes
// (http://127.0.0.1:8080/.well-known/jwks.json); a file works too, such as the jwks_file a
// gateway's YAML trusts. A key the stack does not use (another folder's, or one made after the
// stack started) is refused with a message naming both sides, since its tokens would get 401.
// With the check on, devtoken never makes a key: the stack makes its own on first start.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/devkey"
)

// DefaultJWKS is the JWKS `make run` (cmd/shop) serves: what -jwks checks by default.
const DefaultJWKS = "http://127.0.0.1:8080" + devkey.JWKSPath

// fetchTimeout bounds the fetch of a -jwks URL.
const fetchTimeout = 3 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, mints the token and prints it on stdout; it returns the exit code (2 for a
// usage error, 1 for a failure, a key the gateway does not trust included).
func run(args []string, stdout, stderr io.Writer) int {
	if buildinfo.PrintIfRequested(args, stdout, "devtoken") {
		return 0
	}
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject (`sub`) of the token; required")
	roles := fs.String("roles", "", "comma-separated roles, e.g. customer or admin,customer")
	ttl := fs.Duration("ttl", devkey.DefaultTTL, "lifetime; negative mints an expired token")
	aud := fs.String("aud", devkey.Audience, "audience (`aud`)")
	iss := fs.String("iss", devkey.Issuer, "issuer (`iss`)")
	keys := fs.String("keys", devkey.DefaultDir, "folder of the development key")
	jwks := fs.String("jwks", DefaultJWKS, "the JWKS the gateway trusts, an http(s) URL or a file: a key whose kid is not in it is refused; empty: no check")
	buildinfo.Flag(fs) // answered above
	initKey := fs.Bool("init", false, "only make the key under -keys if missing and print its kid and JWKS file; mints nothing")
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
	if fs.NArg() > 0 || (*sub == "") != *initKey {
		fmt.Fprintln(stderr, "usage: devtoken -sub NAME [-roles a,b] [-ttl 1h] [-aud A] [-iss I] [-claim name=value]... [-keys DIR] [-jwks URL|FILE]\n       devtoken -init [-keys DIR]")
		return 2
	}
	if *initKey {
		_, kid, err := load(*keys)
		if err != nil {
			fmt.Fprintf(stderr, "devtoken: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s\n", kid, filepath.Join(*keys, devkey.JWKSFile))
		return 0
	}
	if *ttl == 0 {
		fmt.Fprintln(stderr, "devtoken: -ttl must not be 0")
		return 2
	}
	key, err := loadTrusted(*keys, *jwks)
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

// loadTrusted loads the key under dir, checking first that the gateway trusts it: its kid is in
// the JWKS at source (read before the key folder, whose own jwks.json loading rewrites). An
// empty source skips the check, and then a missing key is made.
func loadTrusted(dir, source string) (*devkey.Key, error) {
	if source == "" {
		key, _, err := load(dir)
		return key, err
	}
	trusted, err := trustedKIDs(source)
	if err != nil {
		return nil, fmt.Errorf("cannot read the JWKS the gateway trusts: %w\n"+
			"  start the stack (make run), or pass -jwks with the URL or file the gateway trusts (-jwks '' skips this check)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, devkey.PrivateKeyFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no development key in %s, where the gateway (%s) trusts %s\n"+
			"  pass -keys with the stack's key folder: <its -data folder>/devkeys, ./data/devkeys where `make run` runs",
			dir, source, listKIDs(trusted))
	}
	key, kid, err := load(dir)
	if err != nil {
		return nil, err
	}
	if !trusted[kid] {
		return nil, fmt.Errorf("the key in %s (kid %s) is not one the gateway trusts: %s lists %s, so its tokens would get 401\n"+
			"  pass -keys with the stack's key folder: <its -data folder>/devkeys, ./data/devkeys where `make run` runs",
			dir, kid, source, listKIDs(trusted))
	}
	return key, nil
}

// load loads (or makes) the key under dir and reads its kid from the JWKS file it writes there.
func load(dir string) (*devkey.Key, string, error) {
	key, err := devkey.LoadOrCreate(dir)
	if err != nil {
		return nil, "", err
	}
	kids, err := trustedKIDs(filepath.Join(dir, devkey.JWKSFile)) // one key: LoadOrCreate wrote it
	if err != nil {
		return nil, "", fmt.Errorf("reading the key's kid: %w", err)
	}
	var kid string
	for k := range kids {
		kid = k
	}
	return key, kid, nil
}
