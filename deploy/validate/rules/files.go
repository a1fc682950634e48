package rules

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// FileFlags are the flags of the stack's binaries that name a file to read (the gateway's
// -config aside: checkGateway reads it).
var FileFlags = []string{
	"passport-jwks",
	"broker-password-file", "broker-token-file", "broker-creds", "broker-nkey",
	"broker-tls-ca", "broker-tls-cert", "broker-tls-key",
	"tls-cert", "tls-key", "tls-client-ca",
	"upstream-tls-ca", "upstream-tls-cert", "upstream-tls-key",
}

// checkFiles: every absolute path a FileFlags argument of the stack's containers names is in a
// volume mounted in the container, and, when that volume is a ConfigMap or Secret whose keys
// are known here (its items, or a rendered ConfigMap), one of its files.
func (s *set) checkFiles(w workload) []string {
	if !w.ours() {
		return nil
	}
	var out []string
	for _, c := range w.pod.Spec.Containers {
		for _, name := range FileFlags {
			file, ok := flagValue(c.Args, name)
			if !ok || !strings.HasPrefix(file, "/") {
				continue
			}
			if msg := s.fileIn(w.pod.Spec, c, file); msg != "" {
				out = append(out, fmt.Sprintf("%s: container %q: -%s %s: %s", w.id, c.Name, name, file, msg))
			}
		}
	}
	return out
}

// fileIn says why file is not one c can read ("" when it is, or cannot be known).
func (s *set) fileIn(pod corev1.PodSpec, c corev1.Container, file string) string {
	for _, m := range c.VolumeMounts {
		var key string
		switch {
		case m.SubPath != "":
			if file != m.MountPath {
				continue
			}
			key = m.SubPath
		default:
			rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
			if !ok {
				continue
			}
			key = rel
		}
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return "" // checkPod reports the mount of no volume
		}
		v := pod.Volumes[i]
		var items []corev1.KeyToPath
		var keys []string // known keys when there are no items; nil: unknown
		what := ""
		switch {
		case v.Secret != nil:
			items, what = v.Secret.Items, fmt.Sprintf("Secret %q", v.Secret.SecretName)
		case v.ConfigMap != nil:
			items, what = v.ConfigMap.Items, fmt.Sprintf("ConfigMap %q", v.ConfigMap.Name)
			if cm := s.configMaps[v.ConfigMap.Name]; cm != nil {
				keys = []string{}
				for k := range cm.Data {
					keys = append(keys, k)
				}
				for k := range cm.BinaryData {
					keys = append(keys, k)
				}
			}
		default:
			return ""
		}
		if len(items) > 0 {
			if !slices.ContainsFunc(items, func(it corev1.KeyToPath) bool { return it.Path == key }) {
				return fmt.Sprintf("the volume %q (%s) holds only the items it lists, not %q", m.Name, what, key)
			}
			return ""
		}
		if keys != nil && !slices.Contains(keys, key) {
			return fmt.Sprintf("%s, mounted at %s, has no key %q", what, m.MountPath, key)
		}
		return ""
	}
	return "no volume of the container is mounted there (the root filesystem holds no such file)"
}
