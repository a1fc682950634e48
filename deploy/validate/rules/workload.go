package rules

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// workload is what the rules need of a Deployment or a StatefulSet.
type workload struct {
	id       string // "Deployment/gateway"
	name     string
	replicas int32 // 1 when unset, as the API server defaults it
	selector *metav1.LabelSelector
	pod      corev1.PodTemplateSpec
	claims   []string // a StatefulSet's volumeClaimTemplates: volumes of each pod
	// recreate: a Deployment whose strategy is Recreate (its old pods stop before new ones
	// start); false for RollingUpdate, the default, and for a StatefulSet.
	recreate bool
}

func workloadOf(obj runtime.Object) (workload, bool) {
	one := func(r *int32) int32 {
		if r == nil {
			return 1
		}
		return *r
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return workload{id: "Deployment/" + o.Name, name: o.Name, replicas: one(o.Spec.Replicas), selector: o.Spec.Selector, pod: o.Spec.Template,
			recreate: o.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType}, true
	case *appsv1.StatefulSet:
		w := workload{id: "StatefulSet/" + o.Name, name: o.Name, replicas: one(o.Spec.Replicas), selector: o.Spec.Selector, pod: o.Spec.Template}
		for _, t := range o.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, t.Name)
		}
		return w, true
	}
	return workload{}, false
}

// ours reports whether w's pods are the stack's own (labelled part-of PartOf).
func (w workload) ours() bool { return w.pod.Labels["app.kubernetes.io/part-of"] == PartOf }

// selects reports whether sel (a Service's or PDB's selector) picks w's pods.
func (w workload) selectedBy(sel labels.Selector) bool {
	return !sel.Empty() && sel.Matches(labels.Set(w.pod.Labels))
}

// checkSelector: the workload's selector is valid and matches its own pod template.
func (w workload) checkSelector() []string {
	if w.selector == nil {
		return []string{w.id + ": no selector"}
	}
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil {
		return []string{fmt.Sprintf("%s: selector: %v", w.id, err)}
	}
	if !w.selectedBy(sel) {
		return []string{fmt.Sprintf("%s: selector %s does not match its pod template's labels %v", w.id, sel, w.pod.Labels)}
	}
	return nil
}

// containerPort finds a port of c by name (IANA name) or number.
func containerPort(c corev1.Container, name string, number int32) bool {
	for _, p := range c.Ports {
		if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == number) {
			return true
		}
	}
	return false
}

// podPort is containerPort over every container of the pod.
func podPort(pod corev1.PodSpec, name string, number int32) bool {
	for _, c := range pod.Containers {
		if containerPort(c, name, number) {
			return true
		}
	}
	return false
}

// Container is one container of a rendered workload.
type Container struct {
	Workload string // "Deployment/order"
	Name     string
	Image    string
	Args     []string
}

// OwnContainers returns the containers of the stack's own pods (labelled part-of PartOf).
func OwnContainers(objs []runtime.Object) []Container {
	var out []Container
	for _, o := range objs {
		w, ok := workloadOf(o)
		if !ok || !w.ours() {
			continue
		}
		for _, c := range w.pod.Spec.Containers {
			out = append(out, Container{Workload: w.id, Name: c.Name, Image: c.Image, Args: c.Args})
		}
	}
	return out
}
