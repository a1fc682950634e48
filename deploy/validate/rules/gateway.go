package rules

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Gateway facts (gateway/server, gateway/config).
const (
	ReadyPath  = "/readyz"
	HealthPath = "/healthz"
	// MetricsPath is where the gateway serves its metrics (on the admin listener when
	// server.admin_listen is set).
	MetricsPath = "/metrics"
	// DefaultGatewayShutdown is the gateway's server.shutdown_timeout when its YAML does not set
	// one (gateway/config.DefaultShutdownTimeout).
	DefaultGatewayShutdown = 20 * time.Second
	// DefaultGatewayDrain is the gateway's server.drain_delay when its YAML does not set one
	// (gateway/config.DefaultDrainDelay); a negative drain_delay means none.
	DefaultGatewayDrain = 5 * time.Second
	// DefaultGatewayListen is the gateway's listen when its YAML does not set one
	// (gateway/config.DefaultListen).
	DefaultGatewayListen = "127.0.0.1:8080"
)

// checkGateway: the gateway runs at least MinGatewayReplicas replicas, is probed on /readyz and
// /healthz, has a disruption budget, its grace period outlasts its drain and shutdown, and its
// readiness probe and prometheus.io/port annotation name the port that serves /readyz and
// /metrics (checkAdminPorts).
func (s *set) checkGateway() []string {
	var gw *workload
	for i, w := range s.workloads {
		if w.id == "Deployment/"+s.opt.Gateway {
			gw = &s.workloads[i]
		}
	}
	if gw == nil {
		return []string{fmt.Sprintf("Deployment/%s: not rendered", s.opt.Gateway)}
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, gw.id+": "+fmt.Sprintf(format, args...)) }
	if gw.replicas < s.opt.MinGatewayReplicas {
		add("%d replicas; at least %d, so that one can be down", gw.replicas, s.opt.MinGatewayReplicas)
	}
	c := gw.pod.Spec.Containers[0]
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != ReadyPath {
		add("readiness probe is not an httpGet of %s", ReadyPath)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != HealthPath {
		add("liveness probe is not an httpGet of %s", HealthPath)
	}
	budget := false
	for _, pdb := range s.pdbs {
		if ls, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && pdb.Spec.Selector != nil && gw.selectedBy(ls) {
			budget = true
		}
	}
	if !budget {
		add("no PodDisruptionBudget selects its pods")
	}
	cfg, _, err := gatewayConfig(s, *gw)
	if err != nil {
		add("%v", err)
		return out
	}
	set, problems := gatewaySettings(cfg, c.Env)
	for _, p := range problems {
		add("its configuration: %s", p)
	}
	stop := set.shutdownTimeout + max(set.drainDelay, 0)
	if msg := graceCovers(gw.pod.Spec.TerminationGracePeriodSeconds, stop); msg != "" {
		add("%s (server.drain_delay + server.shutdown_timeout)", msg)
	}
	out = append(out, checkAdminPorts(gw.id, gw.pod, c, set)...)
	return out
}

// GatewayConfig returns the YAML the gateway Deployment of objs reads: the ConfigMap key mounted
// at the path of its -config argument, and that ConfigMap's name.
func GatewayConfig(objs []runtime.Object, opt Options) (yaml []byte, configMap string, err error) {
	if opt.Gateway == "" {
		opt.Gateway = DefaultGateway
	}
	s := index(objs, opt)
	for _, w := range s.workloads {
		if w.id == "Deployment/"+opt.Gateway {
			return gatewayConfig(s, w)
		}
	}
	return nil, "", fmt.Errorf("Deployment/%s: not rendered", opt.Gateway)
}

func gatewayConfig(s *set, gw workload) ([]byte, string, error) {
	if len(gw.pod.Spec.Containers) == 0 {
		return nil, "", errors.New("no container")
	}
	c := gw.pod.Spec.Containers[0]
	file := ""
	for i, a := range c.Args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, "config="); ok {
			file = v
		} else if a == "config" && i+1 < len(c.Args) {
			file = c.Args[i+1]
		}
	}
	if file == "" {
		return nil, "", errors.New("no -config argument")
	}
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		key := rel
		if m.SubPath != "" { // a single file
			if file != m.MountPath {
				continue
			}
			key, ok = m.SubPath, true
		}
		if !ok || strings.Contains(key, "/") {
			continue
		}
		var vol *corev1.Volume
		for i := range gw.pod.Spec.Volumes {
			if gw.pod.Spec.Volumes[i].Name == m.Name {
				vol = &gw.pod.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.ConfigMap == nil {
			return nil, "", fmt.Errorf("-config %s: volume %q is not a ConfigMap", file, m.Name)
		}
		cm := s.configMaps[vol.ConfigMap.Name]
		if cm == nil {
			return nil, "", fmt.Errorf("-config %s: ConfigMap %q is not rendered", file, vol.ConfigMap.Name)
		}
		data, ok := cm.Data[key]
		if !ok {
			return nil, "", fmt.Errorf("-config %s: ConfigMap %q has no key %q", file, cm.Name, key)
		}
		return []byte(data), cm.Name, nil
	}
	return nil, "", fmt.Errorf("-config %s: no volume is mounted at %s", file, path.Dir(file))
}
