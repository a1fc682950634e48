package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
)

// maxJWKSBytes bounds what is read of a -jwks document.
const maxJWKSBytes = 1 << 20

// trustedKIDs reads the JWKS at source, an http(s) URL or a file, and returns its kids.
func trustedKIDs(source string) (map[string]bool, error) {
	var data []byte
	var err error
	if strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://") {
		data, err = fetch(source)
	} else {
		data, err = os.ReadFile(source)
	}
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s is not a JWKS: %w", source, err)
	}
	kids := map[string]bool{}
	for _, k := range set.Keys {
		if k.KID != "" {
			kids[k.KID] = true
		}
	}
	if len(kids) == 0 {
		return nil, fmt.Errorf("%s holds no key with a kid", source)
	}
	return kids, nil
}

func fetch(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s (a gateway started by cmd/gateway publishes no JWKS: pass -jwks with the jwks_file its YAML trusts)", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(data) > maxJWKSBytes {
		return nil, errors.New("GET " + url + ": larger than 1 MiB")
	}
	return data, nil
}

// listKIDs is kids sorted, for a message.
func listKIDs(kids map[string]bool) string {
	var l []string
	for k := range kids {
		l = append(l, k)
	}
	slices.Sort(l)
	return "[" + strings.Join(l, " ") + "]"
}
