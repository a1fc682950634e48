package tlsfiles

import "errors"

// ServerFiles names the files of a TLS server (YAML: server.tls of the gateway). The zero value
// means no TLS.
type ServerFiles struct {
	// CertFile is the PEM certificate chain, leaf first. Required with TLS.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is the PEM private key of the leaf. Required with TLS.
	KeyFile string `yaml:"key_file" json:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs that sign client certificates: when set, every
	// client must present a certificate one of them signed (mutual TLS). Default: none (no
	// client certificate asked).
	ClientCAFile string `yaml:"client_ca_file" json:"client_ca_file"`
}

// Enabled reports whether any file is named.
func (f ServerFiles) Enabled() bool { return f != ServerFiles{} }

// Validate checks that the certificate and key are both named when anything is.
func (f ServerFiles) Validate() error {
	if f.Enabled() && (f.CertFile == "" || f.KeyFile == "") {
		return errors.New("cert_file and key_file are both required")
	}
	return nil
}

// ClientFiles names the files of a TLS client (YAML: upstreams.<service>.tls, the Redis
// sections' tls). The zero value means no TLS.
type ClientFiles struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate. Default: the
	// system's roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are the client's own certificate chain and key, presented when the
	// server asks (mutual TLS): both or neither. Default: none.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// ServerName is the name the server's certificate must carry. Default: the host dialed.
	ServerName string `yaml:"server_name" json:"server_name"`
	// Enable turns TLS on with none of the above set (system roots, the host dialed). Default:
	// false; any other field set turns TLS on as well.
	Enable bool `yaml:"enable" json:"enable"`
}

// Enabled reports whether TLS is on: Enable, or any field set.
func (f ClientFiles) Enabled() bool { return f != ClientFiles{} }

// Validate checks that the certificate and key are both named or both left out.
func (f ClientFiles) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("cert_file and key_file go together (mutual TLS): set both or neither")
	}
	return nil
}
