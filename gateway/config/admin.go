package config

import (
	"fmt"
	"net"
)

// validateAdminListen checks server.admin_listen: empty, or a host:port with a port, other
// than listen's (one address cannot be both listeners).
func (c *Config) validateAdminListen() []error {
	a := c.Server.AdminListen
	if a == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil || port == "" {
		return []error{fmt.Errorf("server.admin_listen: %q is not host:port", a)}
	}
	if a == c.Listen && port != "0" {
		return []error{fmt.Errorf("server.admin_listen: %q is the public listen address too; give the admin listener its own port", a)}
	}
	return nil
}
