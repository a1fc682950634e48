package gwmain

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/acme/shopgate/gateway/config"
)

// ListenAdmin listens on server.admin_listen (for Loop.Admin) and logs "gateway admin
// listening" with its address; it returns nil without server.admin_listen.
func ListenAdmin(cfg *config.Config, logger *slog.Logger) (net.Listener, error) {
	if cfg.Server.AdminListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Server.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("admin listening: %w", err)
	}
	logger.Info("gateway admin listening", slog.String("addr", ln.Addr().String()))
	return ln, nil
}
