package rules

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PartOf is the label value that marks this stack's own pods (app.kubernetes.io/part-of): they
// must have readiness and liveness probes and run locked down.
const PartOf = "shopgate"

// checkPod: references resolve, probes point at declared ports, and the stack's own pods are
// probed, locked down and given more grace than their graceful stop.
func (s *set) checkPod(w workload) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, w.id+": "+fmt.Sprintf(format, args...)) }
	spec := w.pod.Spec
	volumes := map[string]bool{}
	for _, c := range w.claims {
		volumes[c] = true
	}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		switch {
		case v.ConfigMap != nil:
			if !s.hasConfigMap(v.ConfigMap.Name, v.ConfigMap.Optional) {
				add("volume %q: ConfigMap %q is neither rendered nor external", v.Name, v.ConfigMap.Name)
			}
			if !readable(v.ConfigMap.DefaultMode, spec.SecurityContext) {
				add("volume %q: defaultMode %#o: its files are root's, unreadable by the pod's non-root user (set fsGroup and a group-readable mode)", v.Name, *v.ConfigMap.DefaultMode)
			}
		case v.Secret != nil:
			if !s.hasSecret(v.Secret.SecretName, v.Secret.Optional) {
				add("volume %q: Secret %q is not declared external", v.Name, v.Secret.SecretName)
			}
			if !readable(v.Secret.DefaultMode, spec.SecurityContext) {
				add("volume %q: defaultMode %#o: its files are root's, unreadable by the pod's non-root user (set fsGroup and a group-readable mode)", v.Name, *v.Secret.DefaultMode)
			}
		case v.PersistentVolumeClaim != nil:
			if s.claims[v.PersistentVolumeClaim.ClaimName] == nil {
				add("volume %q: PersistentVolumeClaim %q is not rendered", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	ours := w.ours()
	for _, c := range spec.Containers {
		cid := fmt.Sprintf("container %q", c.Name)
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				add("%s mounts %q, which is not a volume of the pod", cid, m.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil && !s.hasConfigMap(e.ConfigMapRef.Name, e.ConfigMapRef.Optional) {
				add("%s envFrom: ConfigMap %q is neither rendered nor external", cid, e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil && !s.hasSecret(e.SecretRef.Name, e.SecretRef.Optional) {
				add("%s envFrom: Secret %q is not declared external", cid, e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				if !s.hasConfigMap(r.Name, r.Optional) {
					add("%s env %s: ConfigMap %q is neither rendered nor external", cid, e.Name, r.Name)
				} else if cm := s.configMaps[r.Name]; cm != nil && !isTrue(r.Optional) {
					if _, ok := cm.Data[r.Key]; !ok {
						add("%s env %s: ConfigMap %q has no key %q", cid, e.Name, r.Name, r.Key)
					}
				}
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && !s.hasSecret(r.Name, r.Optional) {
				add("%s env %s: Secret %q is not declared external", cid, e.Name, r.Name)
			}
		}
		for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
			if p == nil {
				if ours && kind != "startup" {
					add("%s has no %s probe", cid, kind)
				}
				continue
			}
			if msg := probePort(c, p); msg != "" {
				add("%s %s probe: %s", cid, kind, msg)
			}
		}
		if ours {
			out = append(out, lockedDown(w.id, cid, spec.SecurityContext, c.SecurityContext)...)
		}
	}
	if ours && w.name != s.opt.Gateway {
		stop := DefaultServiceShutdown
		for _, c := range spec.Containers {
			if d, ok := flagDuration(c.Args, "shutdown-timeout"); ok {
				stop = d
			}
		}
		if msg := graceCovers(spec.TerminationGracePeriodSeconds, stop); msg != "" {
			add("%s", msg)
		}
	}
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }

func (s *set) hasConfigMap(name string, optional *bool) bool {
	return s.configMaps[name] != nil || s.external("ConfigMap", name) || isTrue(optional)
}

func (s *set) hasSecret(name string, optional *bool) bool {
	return s.external("Secret", name) || isTrue(optional)
}

// probePort: the port a probe calls is one the container declares.
func probePort(c corev1.Container, p *corev1.Probe) string {
	switch {
	case p.HTTPGet != nil:
		if !containerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal) {
			return "httpGet port " + p.HTTPGet.Port.String() + " is not a port of the container"
		}
	case p.TCPSocket != nil:
		if !containerPort(c, p.TCPSocket.Port.StrVal, p.TCPSocket.Port.IntVal) {
			return "tcpSocket port " + p.TCPSocket.Port.String() + " is not a port of the container"
		}
	case p.GRPC != nil:
		if !containerPort(c, "", p.GRPC.Port) {
			return fmt.Sprintf("grpc port %d is not a port of the container", p.GRPC.Port)
		}
	}
	return ""
}

// lockedDown: non-root, no privilege escalation, a read-only root filesystem.
func lockedDown(id, cid string, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) []string {
	var out []string
	nonRoot := (pod != nil && isTrue(pod.RunAsNonRoot)) || (c != nil && isTrue(c.RunAsNonRoot))
	if c != nil && c.RunAsNonRoot != nil && !*c.RunAsNonRoot {
		nonRoot = false
	}
	if !nonRoot {
		out = append(out, fmt.Sprintf("%s: %s may run as root (runAsNonRoot is not true)", id, cid))
	}
	if c == nil || !isTrue(c.ReadOnlyRootFilesystem) {
		out = append(out, fmt.Sprintf("%s: %s: readOnlyRootFilesystem is not true", id, cid))
	}
	if c == nil || c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		out = append(out, fmt.Sprintf("%s: %s: allowPrivilegeEscalation is not false", id, cid))
	}
	return out
}

// graceCovers: the kubelet's grace period outlasts a graceful stop of stop.
func graceCovers(grace *int64, stop time.Duration) string {
	g := 30 * time.Second // the API server's default
	if grace != nil {
		g = time.Duration(*grace) * time.Second
	}
	if g <= stop {
		return fmt.Sprintf("terminationGracePeriodSeconds %s is not more than the graceful stop %s: the kubelet would kill it mid-drain", g, stop)
	}
	return ""
}

// flagDuration finds -name=D or -name D (one or two dashes) in args, D a duration.
func flagDuration(args []string, name string) (time.Duration, bool) {
	v, ok := flagValue(args, name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// flagValue finds the last -name=V or -name V (one or two dashes) in args, as the flag package
// keeps the last.
func flagValue(args []string, name string) (string, bool) {
	v, found := "", false
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if val, ok := strings.CutPrefix(a, name+"="); ok {
			v, found = val, true
		} else if a == name && i+1 < len(args) {
			v, found = args[i+1], true
		}
	}
	return v, found
}

// readable: a Secret's or ConfigMap's files, with mode (nil: 0644), can be read by a pod that
// runs as a non-root user: the kubelet makes them root's, and group fsGroup's when it is set.
func readable(mode *int32, pod *corev1.PodSecurityContext) bool {
	if mode == nil || pod == nil || pod.RunAsUser == nil || *pod.RunAsUser == 0 {
		return true // the default mode is world-readable; a root pod reads anything
	}
	return *mode&0o004 != 0 || (pod.FSGroup != nil && *mode&0o040 != 0)
}
