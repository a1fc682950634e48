// Package rules checks what a schema cannot about a rendered set of Kubernetes objects: that
// they fit together (selectors pick the pods they mean, ports and volumes named exist, every
// ConfigMap, Secret and claim referred to is rendered or declared external), and this stack's
// operating rules (the gateway's replicas, probes and disruption budget, its readiness probe and
// scrape annotation on the port its configuration serves /readyz and /metrics on, pods that run
// as non-root on a read-only root filesystem, grace periods longer than the graceful stop), and
// what replicas need (no ReadWriteOnce claim shared or rolled, a disruption budget and a spread
// over nodes for every replicated workload, a PostgreSQL database for a replicated service and a
// broker URL for every service with events: see checkReplicas and checkService), and that the
// files the containers' flags name are in their volumes (checkFiles).
package rules

import (
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults of Options.
const (
	DefaultGateway            = "gateway"
	DefaultMinGatewayReplicas = 2
	// DefaultServiceShutdown is a service's -shutdown-timeout when its args do not set one
	// (cmd/internal/svcmain.DefaultShutdownTimeout).
	DefaultServiceShutdown = 10 * time.Second
)

// DefaultDatabaseServices are the images (their last path element, untagged) whose binaries
// keep a database (-data, -database-url) and publish events (-broker-url): cmd/orderd,
// cmd/paymentd, cmd/inventoryd.
var DefaultDatabaseServices = []string{"orderd", "paymentd", "inventoryd"}

// Options are the stack's facts the rules check against. The zero value means the defaults.
type Options struct {
	// External are objects made outside the manifests ("Secret/passport-keys",
	// "ConfigMap/passport-jwks"): references to them are not errors. Every referenced Secret
	// must be here (Secrets are never rendered). Default: none.
	External []string
	// Gateway is the name of the gateway's Deployment. Default: DefaultGateway.
	Gateway string
	// MinGatewayReplicas is the fewest replicas the gateway may have. Default:
	// DefaultMinGatewayReplicas (2).
	MinGatewayReplicas int32
	// DatabaseServices are the images (by name: "orderd" for
	// registry.example.com/shopgate/orderd:0.1.0) whose containers keep a database and publish
	// events. Default: DefaultDatabaseServices.
	DatabaseServices []string
}

// Check returns every problem found in objs, sorted, each naming its object ("Kind/name").
func Check(objs []runtime.Object, opt Options) []string {
	if opt.Gateway == "" {
		opt.Gateway = DefaultGateway
	}
	if opt.MinGatewayReplicas == 0 {
		opt.MinGatewayReplicas = DefaultMinGatewayReplicas
	}
	if opt.DatabaseServices == nil {
		opt.DatabaseServices = DefaultDatabaseServices
	}
	s := index(objs, opt)
	var out []string
	for _, w := range s.workloads {
		out = append(out, w.checkSelector()...)
		out = append(out, s.checkPod(w)...)
		out = append(out, s.checkReplicas(w)...)
		out = append(out, s.checkService(w)...)
		out = append(out, s.checkFiles(w)...)
	}
	out = append(out, s.checkServices()...)
	out = append(out, s.checkPDBs()...)
	out = append(out, s.checkGateway()...)
	sort.Strings(out)
	return out
}

// set is objs indexed.
type set struct {
	opt        Options
	workloads  []workload
	services   []*corev1.Service
	pdbs       []*policyv1.PodDisruptionBudget
	configMaps map[string]*corev1.ConfigMap
	claims     map[string]*corev1.PersistentVolumeClaim
}

func index(objs []runtime.Object, opt Options) *set {
	s := &set{opt: opt, configMaps: map[string]*corev1.ConfigMap{}, claims: map[string]*corev1.PersistentVolumeClaim{}}
	for _, o := range objs {
		if w, ok := workloadOf(o); ok {
			s.workloads = append(s.workloads, w)
			continue
		}
		switch o := o.(type) {
		case *corev1.Service:
			s.services = append(s.services, o)
		case *policyv1.PodDisruptionBudget:
			s.pdbs = append(s.pdbs, o)
		case *corev1.ConfigMap:
			s.configMaps[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			s.claims[o.Name] = o
		}
	}
	return s
}

func (s *set) external(kind, name string) bool {
	return slices.Contains(s.opt.External, kind+"/"+name)
}

func (s *set) checkServices() []string {
	var out []string
	for _, svc := range s.services {
		id := "Service/" + svc.Name
		if len(svc.Spec.Selector) == 0 {
			out = append(out, id+": no selector")
			continue
		}
		sel := metav1.SetAsLabelSelector(svc.Spec.Selector)
		ls, _ := metav1.LabelSelectorAsSelector(sel)
		var picked []workload
		for _, w := range s.workloads {
			if w.selectedBy(ls) {
				picked = append(picked, w)
			}
		}
		if len(picked) == 0 {
			out = append(out, fmt.Sprintf("%s: selector %s picks no workload's pods", id, ls))
			continue
		}
		headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
		for _, p := range svc.Spec.Ports {
			tp := p.TargetPort
			if headless && tp.String() != "0" && tp.IntValue() != int(p.Port) {
				out = append(out, fmt.Sprintf("%s: port %q: a headless Service ignores targetPort %s; leave it out", id, p.Name, tp.String()))
				continue
			}
			name, number := "", p.Port
			if tp.String() != "0" {
				name, number = "", tp.IntVal
				if tp.Type == intstr.String {
					name = tp.StrVal
				}
			}
			for _, w := range picked {
				if !podPort(w.pod.Spec, name, number) {
					out = append(out, fmt.Sprintf("%s: port %q: %s has no container port %s", id, p.Name, w.id, portText(name, number)))
				}
			}
		}
	}
	return out
}

func portText(name string, number int32) string {
	if name != "" {
		return fmt.Sprintf("named %q", name)
	}
	return fmt.Sprint(number)
}

// checkPDBs: each budget picks a workload, and lets at least one of its pods go.
func (s *set) checkPDBs() []string {
	var out []string
	for _, pdb := range s.pdbs {
		id := "PodDisruptionBudget/" + pdb.Name
		ls, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || pdb.Spec.Selector == nil {
			out = append(out, id+": no valid selector")
			continue
		}
		n := 0
		for _, w := range s.workloads {
			if !w.selectedBy(ls) {
				continue
			}
			n++
			if m := pdb.Spec.MinAvailable; m != nil && m.Type == 0 && m.IntVal >= w.replicas {
				out = append(out, fmt.Sprintf("%s: minAvailable %d with %d replicas of %s: no pod may ever be evicted, node drains block", id, m.IntVal, w.replicas, w.id))
			}
		}
		if n == 0 {
			out = append(out, fmt.Sprintf("%s: selector %s picks no workload's pods", id, ls))
		}
	}
	return out
}
