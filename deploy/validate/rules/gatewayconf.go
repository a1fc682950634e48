package rules

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// gatewayEnvPrefix starts the environment variables that override the gateway's YAML
// (gateway/config.EnvPrefix): GATEWAY__SERVER__ADMIN_LISTEN sets server.admin_listen.
const gatewayEnvPrefix = "GATEWAY__"

// gatewaySet is what the rules need of the gateway's configuration, its defaults applied.
type gatewaySet struct {
	listen          string        // listen; default DefaultGatewayListen
	adminListen     string        // server.admin_listen; "" when /readyz and /metrics are on listen
	shutdownTimeout time.Duration // server.shutdown_timeout; default DefaultGatewayShutdown
	drainDelay      time.Duration // server.drain_delay; default DefaultGatewayDrain, negative: none
}

// gatewaySettings reads the gateway's YAML with the container's literal GATEWAY__ variables
// applied (a variable from a ConfigMap or Secret cannot be read here and is ignored), and the
// gateway's defaults for what neither sets. It returns a problem per value it cannot read.
func gatewaySettings(cfg []byte, env []corev1.EnvVar) (gatewaySet, []string) {
	var y struct {
		Listen string `json:"listen"`
		Server struct {
			ShutdownTimeout string `json:"shutdown_timeout"`
			DrainDelay      string `json:"drain_delay"`
			AdminListen     string `json:"admin_listen"`
		} `json:"server"`
	}
	if err := yaml.Unmarshal(cfg, &y); err != nil {
		return gatewaySet{listen: DefaultGatewayListen, shutdownTimeout: DefaultGatewayShutdown, drainDelay: DefaultGatewayDrain}, []string{err.Error()}
	}
	keys := map[string]*string{
		"LISTEN":                   &y.Listen,
		"SERVER__SHUTDOWN_TIMEOUT": &y.Server.ShutdownTimeout,
		"SERVER__DRAIN_DELAY":      &y.Server.DrainDelay,
		"SERVER__ADMIN_LISTEN":     &y.Server.AdminListen,
	}
	for _, e := range env {
		name, ok := strings.CutPrefix(strings.ToUpper(e.Name), gatewayEnvPrefix)
		if v := keys[name]; ok && v != nil && e.ValueFrom == nil {
			*v = e.Value // an empty value is the default, as in gateway/config
		}
	}
	set := gatewaySet{listen: y.Listen, adminListen: y.Server.AdminListen}
	if set.listen == "" {
		set.listen = DefaultGatewayListen
	}
	var problems []string
	for _, d := range []struct {
		key, val string
		def      time.Duration
		to       *time.Duration
	}{
		{"server.shutdown_timeout", y.Server.ShutdownTimeout, DefaultGatewayShutdown, &set.shutdownTimeout},
		{"server.drain_delay", y.Server.DrainDelay, DefaultGatewayDrain, &set.drainDelay},
	} {
		*d.to = d.def
		if d.val == "" {
			continue
		}
		v, err := time.ParseDuration(d.val)
		if err != nil {
			problems = append(problems, d.key+": "+err.Error())
			continue
		}
		*d.to = v
	}
	return set, problems
}
