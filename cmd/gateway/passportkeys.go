package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/acme/shopgate/gateway/passport"
)

// runPassportKeys is `gateway passport-keys new|jwks`: the passport keys' housekeeping.
func runPassportKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("passport-keys: want new or jwks")
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprintln(stderr, "usage: gateway passport-keys new -dir DIR | gateway passport-keys jwks [-out FILE] PATH...")
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("gateway passport-keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "new":
		dir := fs.String("dir", "", "key folder (made with mode 0700 if missing)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *dir == "" || fs.NArg() > 0 {
			return errors.New("passport-keys new: want -dir DIR and nothing else")
		}
		k, err := passport.GenerateKey(*dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", k.ID, k.File)
		return nil
	case "jwks":
		out := fs.String("out", "", "write the JWKS to this file (atomically) instead of stdout")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return errors.New("passport-keys jwks: want one or more key folders or files")
		}
		jwks, err := passport.JWKSOf(fs.Args()...)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = stdout.Write(jwks)
			return err
		}
		return writeAtomic(*out, jwks)
	}
	return fmt.Errorf("passport-keys: unknown command %q: want new or jwks", args[0])
}

// writeAtomic replaces path with data (mode 0644: public keys), so that a service reading it
// never sees half a file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jwks-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Close(), os.Chmod(tmp.Name(), 0o644), os.Rename(tmp.Name(), path)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
