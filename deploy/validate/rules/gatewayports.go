package rules

import (
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PrometheusPortAnnotation is the pod annotation scrapers read the metrics port from.
const PrometheusPortAnnotation = "prometheus.io/port"

// checkAdminPorts: the gateway's readiness probe, and its prometheus.io/port annotation when it
// has one, name the port that serves /readyz and /metrics: server.admin_listen's when set (the
// public listener then answers 404 for both), else listen's.
func checkAdminPorts(id string, pod corev1.PodTemplateSpec, c corev1.Container, set gatewaySet) []string {
	var out []string
	key, addr := "listen", set.listen
	if set.adminListen != "" {
		key, addr = "server.admin_listen", set.adminListen
	}
	host, want, err := listenPort(addr)
	if err != nil {
		return []string{fmt.Sprintf("%s: its configuration: %s %q: %v", id, key, addr, err)}
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		out = append(out, fmt.Sprintf("%s: its configuration: %s %q is a loopback address: the kubelet's probes and Prometheus cannot reach %s and %s (listen on \":%d\")", id, key, addr, ReadyPath, MetricsPath, want))
	}
	serves := fmt.Sprintf("the port of %s (%d), which serves %%s", key, want)
	if p := c.ReadinessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path == ReadyPath {
		if got, ok := resolvePort(c, p.HTTPGet.Port); ok && got != want {
			out = append(out, fmt.Sprintf("%s: readiness probe port %s (%d) is not "+serves, id, p.HTTPGet.Port.String(), got, ReadyPath))
		}
	}
	if v, ok := pod.Annotations[PrometheusPortAnnotation]; ok {
		if got, err := strconv.Atoi(v); err != nil || int32(got) != want {
			out = append(out, fmt.Sprintf("%s: annotation %s %q is not "+serves, id, PrometheusPortAnnotation, v, MetricsPath))
		}
	}
	return out
}

// listenPort splits a listen address ("host:port", ":port") into its host and port number.
func listenPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return host, int32(n), nil
}

// resolvePort is the number of a probe's port: itself, or the container port of that name.
// False when the name is not declared (probePort reports that).
func resolvePort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}
