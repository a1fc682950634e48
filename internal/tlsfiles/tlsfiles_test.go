package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
)

// handshake runs one TLS handshake over a real loopback connection and returns the
// certificate each side saw from the other (nil when none), or the client's error.
func handshake(t *testing.T, server, client *tls.Config) (serverSaw, clientSaw *x509.Certificate, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cert *x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		err = tc.Handshake()
		var r result
		if err == nil {
			if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
				r.cert = pc[0]
			}
			_, _ = tc.Write([]byte{1}) // TLS 1.3: the client learns of a refused certificate on its first read
		}
		r.err = err
		done <- r
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		clientSaw = c.ConnectionState().PeerCertificates[0]
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	r := <-done
	if err == nil {
		err = r.err
	}
	return r.cert, clientSaw, err
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestServerCertificateRotates(t *testing.T) {
	caA, caB := tlsfilestest.NewCA(t, "ca A"), tlsfilestest.NewCA(t, "ca B")
	a, b := caA.Issue(t, "server A"), caB.Issue(t, "server B")
	dir := t.TempDir()
	f := tlsfilestest.WriteFiles(t, dir, caA, a)
	srv, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: f.Key}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caA.Cert)
	roots.AddCert(caB.Cert)
	client := &tls.Config{RootCAs: roots, ServerName: "localhost"}

	steps := []struct {
		name   string
		change func()
		want   *x509.Certificate
	}{
		{"the first files", func() {}, a.Leaf},
		{"replaced by B", func() { tlsfilestest.Write(t, f.Cert, b.CertPEM); tlsfilestest.Write(t, f.Key, b.KeyPEM) }, b.Leaf},
		{"a half-written certificate keeps B", func() { writeInPlace(t, f.Cert, a.CertPEM[:len(a.CertPEM)/2]) }, b.Leaf},
		{"a certificate that does not match the key keeps B", func() { writeInPlace(t, f.Cert, a.CertPEM) }, b.Leaf},
		{"the key written after it: A", func() { writeInPlace(t, f.Key, a.KeyPEM) }, a.Leaf},
		{"a missing file keeps A", func() { os.Remove(f.Key) }, a.Leaf},
	}
	for _, s := range steps {
		s.change()
		_, got, err := handshake(t, srv.Config("http/1.1"), client)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got.SerialNumber.Cmp(s.want.SerialNumber) != 0 {
			t.Errorf("%s: the client saw %q, want %q", s.name, got.Subject.CommonName, s.want.Subject.CommonName)
		}
	}
}

// writeInPlace rewrites path in place (no rename), as a careless copy does, leaving the file
// as a reader finds it halfway.
func writeInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A Kubernetes Secret volume: the files are symlinks through ..data, which is swapped to a new
// timestamped folder in one rename.
func TestKubernetesSecretVolumeSwap(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "ca")
	a, b := ca.Issue(t, "A"), ca.Issue(t, "B")
	vol := t.TempDir()
	version := func(name string, p tlsfilestest.Pair) {
		d := filepath.Join(vol, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		tlsfilestest.WriteFiles(t, d, ca, p)
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_12_04_01", a)
	for _, n := range []string{"cert.pem", "key.pem", "ca.pem"} {
		if err := os.Symlink(filepath.Join("..data", n), filepath.Join(vol, n)); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: filepath.Join(vol, "cert.pem"), KeyFile: filepath.Join(vol, "key.pem")}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsfiles.NewClient(tlsfiles.ClientFiles{CAFile: filepath.Join(vol, "ca.pem")}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		version string
		pair    tlsfilestest.Pair
	}{{"", a}, {"..2026_12_04_02", b}} {
		if step.version != "" {
			version(step.version, step.pair)
		}
		_, got, err := handshake(t, srv.Config(), cli.ConfigFor("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		if got.SerialNumber.Cmp(step.pair.Leaf.SerialNumber) != 0 {
			t.Errorf("after %q the client saw %s, want %s", step.version, got.Subject.CommonName, step.pair.Leaf.Subject.CommonName)
		}
	}
}

// The server's client CA rotates: a client certificate of the old CA is refused by the next
// handshake, one of the new CA accepted.
func TestServerClientCARotates(t *testing.T) {
	caA, caB, serverCA := tlsfilestest.NewCA(t, "clients A"), tlsfilestest.NewCA(t, "clients B"), tlsfilestest.NewCA(t, "server")
	dir := t.TempDir()
	f := tlsfilestest.WriteFiles(t, dir, caA, serverCA.Issue(t, "server"))
	srv, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: f.CA}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	clientOf := func(ca *tlsfilestest.CA) (*tls.Config, *x509.Certificate) {
		p := ca.Issue(t, "client of "+ca.Cert.Subject.CommonName)
		cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}, p.Leaf
	}
	ofA, leafA := clientOf(caA)
	ofB, leafB := clientOf(caB)
	none := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	for _, tc := range []struct {
		name   string
		rotate bool
		client *tls.Config
		want   *x509.Certificate // nil: refused
	}{
		{"no certificate", false, none, nil},
		{"A's client before", false, ofA, leafA},
		{"B's client before", false, ofB, nil},
		{"A's client after the CA file became B", true, ofA, nil},
		{"B's client after", false, ofB, leafB},
	} {
		if tc.rotate {
			tlsfilestest.Write(t, f.CA, caB.PEM)
		}
		saw, _, err := handshake(t, srv.Config(), tc.client)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("%s: accepted, want refused", tc.name)
		case tc.want != nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != nil && saw.SerialNumber.Cmp(tc.want.SerialNumber) != 0:
			t.Errorf("%s: the server saw %s", tc.name, saw.Subject.CommonName)
		}
	}
	if !srv.MutualTLS() {
		t.Error("MutualTLS() = false with a client CA file")
	}
}

// The client's CA bundle and certificate rotate: the next handshake verifies against the new CA
// and presents the new certificate.
func TestClientFilesRotate(t *testing.T) {
	caA, caB := tlsfilestest.NewCA(t, "A"), tlsfilestest.NewCA(t, "B")
	dir := t.TempDir()
	clientA, clientB := caA.Issue(t, "client A"), caB.Issue(t, "client B")
	f := tlsfilestest.WriteFiles(t, dir, caA, clientA)
	cli, err := tlsfiles.NewClient(tlsfiles.ClientFiles{CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	both := x509.NewCertPool()
	both.AddCert(caA.Cert)
	both.AddCert(caB.Cert)
	serverOf := func(ca *tlsfilestest.CA) *tls.Config {
		p := ca.Issue(t, "server of "+ca.Cert.Subject.CommonName)
		cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: both, ClientAuth: tls.RequireAndVerifyClientCert}
	}
	srvA, srvB := serverOf(caA), serverOf(caB)
	for _, tc := range []struct {
		name    string
		change  func()
		server  *tls.Config
		host    string
		ok      bool
		wantCli *x509.Certificate
	}{
		{"A's server, A's CA", func() {}, srvA, "127.0.0.1", true, clientA.Leaf},
		{"the wrong name", func() {}, srvA, "shop.example", false, nil},
		{"B's server, A's CA", func() {}, srvB, "localhost", false, nil},
		{"B's server after rotating to B", func() {
			tlsfilestest.Write(t, f.CA, caB.PEM)
			tlsfilestest.Write(t, f.Cert, clientB.CertPEM)
			tlsfilestest.Write(t, f.Key, clientB.KeyPEM)
		}, srvB, "localhost", true, clientB.Leaf},
		{"A's server after rotating to B", func() {}, srvA, "localhost", false, nil},
		{"a half-written CA bundle keeps B", func() { writeInPlace(t, f.CA, caA.PEM[:40]) }, srvB, "localhost", true, clientB.Leaf},
	} {
		tc.change()
		saw, _, err := handshake(t, tc.server, cli.ConfigFor(tc.host))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if tc.ok && saw.SerialNumber.Cmp(tc.wantCli.SerialNumber) != 0 {
			t.Errorf("%s: the server saw %s, want %s", tc.name, saw.Subject.CommonName, tc.wantCli.Subject.CommonName)
		}
	}
}

func TestFilesThatDoNotLoadAtStart(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "ca")
	p := ca.Issue(t, "leaf")
	dir := t.TempDir()
	f := tlsfilestest.WriteFiles(t, dir, ca, p)
	other := ca.Issue(t, "other")
	otherKey := filepath.Join(dir, "other-key.pem")
	tlsfilestest.Write(t, otherKey, other.KeyPEM)
	for _, tc := range []struct {
		name    string
		server  *tlsfiles.ServerFiles
		client  *tlsfiles.ClientFiles
		wantErr string
	}{
		{"server without key", &tlsfiles.ServerFiles{CertFile: f.Cert}, nil, "both required"},
		{"server with a missing file", &tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: filepath.Join(dir, "nope")}, nil, "no such file"},
		{"server with another's key", &tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: otherKey}, nil, "private key does not match"},
		{"server with a key as client CA", &tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: f.Key}, nil, "no certificate"},
		{"client with a certificate and no key", nil, &tlsfiles.ClientFiles{CertFile: f.Cert}, "go together"},
		{"client with a certificate as CA and a broken one", nil, &tlsfiles.ClientFiles{CAFile: otherKey}, "no certificate"},
	} {
		var err error
		if tc.server != nil {
			_, err = tlsfiles.NewServer(*tc.server, quiet())
		} else {
			_, err = tlsfiles.NewClient(*tc.client, quiet())
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.wantErr)
		}
	}
}

// A file that stays broken is logged once, not at every handshake.
func TestBrokenFilesAreLoggedOnce(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "ca")
	p := ca.Issue(t, "leaf")
	f := tlsfilestest.WriteFiles(t, t.TempDir(), ca, p)
	var buf bytes.Buffer
	srv, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: f.Key}, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	writeInPlace(t, f.Cert, []byte("-----BEGIN CERT"))
	for range 3 {
		if got := srv.Certificate(); got.SerialNumber.Cmp(p.Leaf.SerialNumber) != 0 {
			t.Fatalf("serving %s, want the last good one", got.Subject.CommonName)
		}
	}
	if n := strings.Count(buf.String(), "do not load"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, buf.String())
	}
}

// BenchmarkConfigForClient is what a new connection to a server pays for the rotation: the
// stats of its files and the per-handshake configuration (nothing changed).
func BenchmarkConfigForClient(b *testing.B) {
	ca := tlsfilestest.NewCA(b, "ca")
	f := tlsfilestest.WriteFiles(b, b.TempDir(), ca, ca.Issue(b, "leaf"))
	srv, err := tlsfiles.NewServer(tlsfiles.ServerFiles{CertFile: f.Cert, KeyFile: f.Key, ClientCAFile: f.CA}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	cfg := srv.Config("h2")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cfg.GetConfigForClient(nil); err != nil {
			b.Fatal(err)
		}
	}
}
