package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/acme/shopgate/deploy/validate/images"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HostnameKey is the node label a spread over nodes (topologySpreadConstraints) or a pod
// anti-affinity keys on.
const HostnameKey = "kubernetes.io/hostname"

// checkReplicas: what a Deployment's replicas need. A ReadWriteOnce claim (a SQLite file's
// volume) is mounted by one pod: one replica, replaced with Recreate (a rolling update's new pod
// would wait for the old one's volume on another node, or share the file on the same one). The
// stack's own workloads with more than one replica have a PodDisruptionBudget (the gateway's is
// checked by checkGateway) and spread over nodes (topologySpreadConstraints or a pod
// anti-affinity on HostnameKey selecting their own pods).
func (s *set) checkReplicas(w workload) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, w.id+": "+fmt.Sprintf(format, args...)) }
	if strings.HasPrefix(w.id, "Deployment/") {
		for _, v := range w.pod.Spec.Volumes {
			if v.PersistentVolumeClaim == nil {
				continue
			}
			claim := s.claims[v.PersistentVolumeClaim.ClaimName]
			if claim == nil || !readWriteOnce(claim) {
				continue
			}
			if w.replicas > 1 {
				add("%d replicas mount the ReadWriteOnce claim %q, which one pod at a time may hold (a SQLite file has one writer): one replica, or a database URL and no claim", w.replicas, claim.Name)
			}
			if !w.recreate {
				add("strategy RollingUpdate with the ReadWriteOnce claim %q: the new pod waits for the old one's volume, or shares its file on the same node; use Recreate", claim.Name)
			}
		}
	}
	if !w.ours() || w.replicas < 2 {
		return out
	}
	if w.name != s.opt.Gateway && !s.budgeted(w) {
		add("%d replicas and no PodDisruptionBudget selects its pods: a node drain may evict them all at once", w.replicas)
	}
	if !spread(w) {
		add("%d replicas and neither topologySpreadConstraints nor a pod anti-affinity on %s selecting its pods: they may all land on one node", w.replicas, HostnameKey)
	}
	return out
}

func readWriteOnce(c *corev1.PersistentVolumeClaim) bool {
	return slices.Contains(c.Spec.AccessModes, corev1.ReadWriteOnce) || slices.Contains(c.Spec.AccessModes, corev1.ReadWriteOncePod)
}

// budgeted reports whether a PodDisruptionBudget selects w's pods.
func (s *set) budgeted(w workload) bool {
	for _, pdb := range s.pdbs {
		if pdb.Spec.Selector == nil {
			continue
		}
		if ls, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && w.selectedBy(ls) {
			return true
		}
	}
	return false
}

// spread reports whether w's pods are spread over nodes: a topology spread constraint or a pod
// anti-affinity term (required or preferred) on HostnameKey whose selector picks them.
func spread(w workload) bool {
	picks := func(sel *metav1.LabelSelector) bool {
		if sel == nil {
			return false
		}
		ls, err := metav1.LabelSelectorAsSelector(sel)
		return err == nil && w.selectedBy(ls)
	}
	spec := w.pod.Spec
	for _, c := range spec.TopologySpreadConstraints {
		if c.TopologyKey == HostnameKey && picks(c.LabelSelector) {
			return true
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, t := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if t.TopologyKey == HostnameKey && picks(t.LabelSelector) {
				return true
			}
		}
		for _, t := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if t.PodAffinityTerm.TopologyKey == HostnameKey && picks(t.PodAffinityTerm.LabelSelector) {
				return true
			}
		}
	}
	return false
}

// checkService: a container of one of Options.DatabaseServices has a -broker-url (without one
// its events go to a broker embedded in its own pod, which no other service reaches); with more
// than one replica, a PostgreSQL database URL (-database-url or the variable
// <IMAGE>__DATABASE_URL, e.g. ORDERD__DATABASE_URL; without one each replica keeps its own
// SQLite file); and a NATS cluster's streams at more than one replica (-broker-replicas) when
// its -broker-url lists several servers.
func (s *set) checkService(w workload) []string {
	if !w.ours() {
		return nil
	}
	var out []string
	for _, c := range w.pod.Spec.Containers {
		name := images.Name(c.Image)
		if !slices.Contains(s.opt.DatabaseServices, name) {
			continue
		}
		add := func(format string, args ...any) {
			out = append(out, fmt.Sprintf("%s: container %q: ", w.id, c.Name)+fmt.Sprintf(format, args...))
		}
		broker, ok := flagValue(c.Args, "broker-url")
		if !ok || broker == "" {
			add("no -broker-url: its events would go through a broker embedded in its own pod, which no other service reaches")
		}
		env := strings.ToUpper(name) + "__DATABASE_URL"
		db, known, set := databaseURL(c, env)
		switch {
		case !set && w.replicas > 1:
			add("%d replicas and no database URL (-database-url or $%s): each replica would keep its own SQLite file", w.replicas, env)
		case set && known && !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://"):
			add("database URL %q is not postgres:// or postgresql://", redact(db))
		}
		if url, resolved := s.expand(c, broker); resolved && strings.HasPrefix(url, "nats://") {
			seeds := strings.Count(url, ",") + 1
			r, _ := flagValue(c.Args, "broker-replicas")
			if n, err := strconv.Atoi(r); seeds > 1 && (err != nil || n < 2) {
				add("-broker-url lists %d NATS servers (a cluster) but -broker-replicas is %s: each stream on one server, lost with it; -broker-replicas=3", seeds, orDefault(r, "1 (the default)"))
			}
		}
	}
	return out
}

// databaseURL finds c's database URL: the last -database-url argument, else the variable env.
// known is false when its value comes from a Secret or ConfigMap (not readable here).
func databaseURL(c corev1.Container, env string) (url string, known, set bool) {
	if v, ok := flagValue(c.Args, "database-url"); ok {
		return v, !strings.Contains(v, "$("), v != ""
	}
	for _, e := range c.Env {
		if !strings.EqualFold(e.Name, env) {
			continue
		}
		if e.ValueFrom != nil {
			return "", false, true
		}
		return e.Value, true, e.Value != ""
	}
	return "", false, false
}

// expand resolves v's $(VAR) references the way the kubelet does, from c's literal variables and
// those of rendered ConfigMaps; resolved is false when one cannot be read here (a Secret).
func (s *set) expand(c corev1.Container, v string) (string, bool) {
	for _, e := range c.Env {
		ref := "$(" + e.Name + ")"
		if !strings.Contains(v, ref) {
			continue
		}
		val, ok := e.Value, e.ValueFrom == nil
		if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil {
			if cm := s.configMaps[r.ConfigMapKeyRef.Name]; cm != nil {
				val, ok = cm.Data[r.ConfigMapKeyRef.Key]
			}
		}
		if !ok {
			return "", false
		}
		v = strings.ReplaceAll(v, ref, val)
	}
	return v, !strings.Contains(v, "$(")
}

// redact hides the password of a URL user:password@host.
func redact(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	at := strings.LastIndex(rest, "@")
	if !ok || at < 0 {
		return u
	}
	if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
		return scheme + "://" + user + ":xxxxx" + rest[at:]
	}
	return u
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
