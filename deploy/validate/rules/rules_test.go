package rules_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/internal/fixture"
	"github.com/acme/shopgate/deploy/validate/manifest"
	"github.com/acme/shopgate/deploy/validate/rules"
	"github.com/acme/shopgate/deploy/validate/typed"
	"k8s.io/apimachinery/pkg/runtime"
)

func decode(t *testing.T, data []byte) []runtime.Object {
	t.Helper()
	objs, err := manifest.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	for _, o := range objs {
		obj, err := typed.Decode(o.JSON)
		if err != nil {
			t.Fatalf("%s: %v", o.ID(), err)
		}
		out = append(out, obj)
	}
	return out
}

const (
	gw    = "Deployment/gateway"
	cmGW  = "ConfigMap/gateway-config-ctm798km24"
	order = "Deployment/order"
)

// The production overlay's admin port, one edit at a time, on the dev fixture.
var (
	adminListen    = fixture.Edit{ID: cmGW, Old: "drain_delay: 5s", New: "drain_delay: 5s\n      admin_listen: \":9090\""}
	adminPort      = fixture.Edit{ID: gw, Old: "          name: http\n          protocol: TCP\n", New: "          name: http\n          protocol: TCP\n        - containerPort: 9090\n          name: admin\n          protocol: TCP\n"}
	probeOnAdmin   = fixture.Edit{ID: gw, Old: "path: /readyz\n            port: http", New: "path: /readyz\n            port: admin"}
	annotation9090 = fixture.Edit{ID: gw, Old: `prometheus.io/port: "8080"`, New: `prometheus.io/port: "9090"`}
)

// envGW sets a literal environment variable on the gateway's container.
func envGW(name, value string) fixture.Edit {
	return fixture.Edit{ID: gw, Old: "        env:\n", New: "        env:\n        - name: " + name + "\n          value: \"" + value + "\"\n"}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		edits    []fixture.Edit
		external []string // default: fixture.External
		want     []string // substrings, one per problem, in the sorted order of the problems
	}{
		{name: "the dev overlay as rendered"},
		{"one gateway", []fixture.Edit{{ID: gw, Old: "replicas: 2", New: "replicas: 1"}}, nil,
			[]string{"Deployment/gateway: 1 replicas; at least 2", "PodDisruptionBudget/gateway: minAvailable 1 with 1 replicas"}},
		{"gateway readiness elsewhere", []fixture.Edit{{ID: gw, Old: "path: /readyz", New: "path: /healthz"}}, nil,
			[]string{"Deployment/gateway: readiness probe is not an httpGet of /readyz"}},
		{"gateway without a budget", []fixture.Edit{{ID: "PodDisruptionBudget/gateway", Drop: true}}, nil,
			[]string{"Deployment/gateway: no PodDisruptionBudget selects its pods"}},
		{"budget selecting nothing", []fixture.Edit{{ID: "PodDisruptionBudget/storefront", Old: "matchLabels:\n      app.kubernetes.io/name: storefront", New: "matchLabels:\n      app.kubernetes.io/name: storefrnt"}}, nil,
			[]string{"Deployment/storefront: 2 replicas and no PodDisruptionBudget selects its pods", "PodDisruptionBudget/storefront: selector app.kubernetes.io/name=storefrnt picks no workload's pods"}},
		{"probe on an undeclared port", []fixture.Edit{{ID: gw, Old: "path: /healthz\n            port: http", New: "path: /healthz\n            port: admin"}}, nil,
			[]string{`Deployment/gateway: container "gateway" liveness probe: httpGet port admin is not a port of the container`}},
		{"grpc probe on an undeclared port", []fixture.Edit{{ID: order, Old: "port: 9101\n            service:", New: "port: 9111\n            service:"}}, nil,
			[]string{`Deployment/order: container "order" readiness probe: grpc port 9111 is not a port`}},
		{"service selecting nothing", []fixture.Edit{{ID: "Service/gateway", Old: "selector:\n    app.kubernetes.io/name: gateway", New: "selector:\n    app.kubernetes.io/name: gw"}}, nil,
			[]string{"Service/gateway: selector app.kubernetes.io/name=gw picks no workload's pods"}},
		{"service to an undeclared port", []fixture.Edit{{ID: "Service/gateway", Old: "targetPort: http", New: "targetPort: web"}}, nil,
			[]string{`Service/gateway: port "http": Deployment/gateway has no container port named "web"`}},
		{"headless service with a targetPort", []fixture.Edit{{ID: "Service/order", Old: "protocol: TCP", New: "protocol: TCP\n    targetPort: grpc"}}, nil,
			[]string{`Service/order: port "grpc": a headless Service ignores targetPort grpc`}},
		{"workload selector off its pods", []fixture.Edit{{ID: order, Old: "matchLabels:\n      app.kubernetes.io/name: order", New: "matchLabels:\n      app.kubernetes.io/name: ordr"}}, nil,
			[]string{"Deployment/order: selector app.kubernetes.io/name=ordr does not match"}},
		{"mount of no volume", []fixture.Edit{{ID: gw, Old: "name: tmp\n      securityContext", New: "name: temp\n      securityContext"}}, nil,
			[]string{`Deployment/gateway: container "gateway" mounts "temp", which is not a volume`}},
		{"missing ConfigMap", []fixture.Edit{{ID: "ConfigMap/shop-broker-9ckd7gcd9f", Drop: true}}, nil,
			[]string{`Deployment/inventory: container "inventory" env BROKER_URL: ConfigMap "shop-broker-9ckd7gcd9f" is neither`,
				`Deployment/order: container "order" env BROKER_URL`, `Deployment/payment: container "payment" env BROKER_URL`}},
		{"missing ConfigMap key", []fixture.Edit{{ID: "ConfigMap/shop-broker-9ckd7gcd9f", Old: "url:", New: "uri:"}}, nil,
			[]string{`Deployment/inventory: container "inventory" env BROKER_URL: ConfigMap "shop-broker-9ckd7gcd9f" has no key "url"`,
				`Deployment/order`, `Deployment/payment`}},
		{"Secret not declared", nil, []string{"Secret/redis", "ConfigMap/passport-jwks"},
			[]string{`Deployment/gateway: volume "passport-keys": Secret "passport-keys" is not declared external`}},
		{"missing claim", []fixture.Edit{{ID: "PersistentVolumeClaim/order-data", Drop: true}}, nil,
			[]string{`Deployment/order: volume "data": PersistentVolumeClaim "order-data" is not rendered`}},
		{"Secret unreadable", []fixture.Edit{{ID: gw, Old: "defaultMode: 288", New: "defaultMode: 256"}}, nil,
			[]string{`Deployment/gateway: volume "passport-keys": defaultMode 0400: its files are root's, unreadable`}},
		{"Secret group-readable without fsGroup", []fixture.Edit{{ID: gw, Old: "        fsGroup: 65532\n", New: ""}}, nil,
			[]string{`Deployment/gateway: volume "passport-keys": defaultMode 0440: its files are root's, unreadable`}},
		{"ConfigMap unreadable", []fixture.Edit{{ID: gw, Old: "configMap:\n          name: gateway-config-ctm798km24", New: "configMap:\n          defaultMode: 384\n          name: gateway-config-ctm798km24"}}, nil,
			[]string{`Deployment/gateway: volume "config": defaultMode 0600: its files are root's, unreadable`}},
		{"root allowed", []fixture.Edit{{ID: order, Old: "runAsNonRoot: true", New: "runAsNonRoot: false"}}, nil,
			[]string{`Deployment/order: container "order" may run as root`}},
		{"writable root", []fixture.Edit{{ID: order, Old: "readOnlyRootFilesystem: true", New: "readOnlyRootFilesystem: false"}}, nil,
			[]string{`Deployment/order: container "order": readOnlyRootFilesystem is not true`}},
		{"service grace shorter than its stop", []fixture.Edit{{ID: order, Old: "- -data=/data", New: "- -data=/data\n        - -shutdown-timeout=30s"}}, nil,
			[]string{"Deployment/order: terminationGracePeriodSeconds 30s is not more than the graceful stop 30s"}},
		{"gateway grace shorter than drain and stop", []fixture.Edit{{ID: cmGW, Old: "drain_delay: 5s", New: "drain_delay: 25s"}}, nil,
			[]string{"Deployment/gateway: terminationGracePeriodSeconds 45s is not more than the graceful stop 45s"}},
		{"gateway drain_delay missing is its default 5s", []fixture.Edit{{ID: cmGW, Old: "drain_delay: 5s", New: ""}, {ID: gw, Old: "terminationGracePeriodSeconds: 45", New: "terminationGracePeriodSeconds: 25"}}, nil,
			[]string{"Deployment/gateway: terminationGracePeriodSeconds 25s is not more than the graceful stop 25s"}},
		{"gateway drain_delay negative is none", []fixture.Edit{{ID: cmGW, Old: "drain_delay: 5s", New: "drain_delay: -1s"}, {ID: gw, Old: "terminationGracePeriodSeconds: 45", New: "terminationGracePeriodSeconds: 20"}}, nil,
			[]string{"Deployment/gateway: terminationGracePeriodSeconds 20s is not more than the graceful stop 20s"}},
		{"gateway drain_delay from its environment", []fixture.Edit{envGW("GATEWAY__SERVER__DRAIN_DELAY", "30s")}, nil,
			[]string{"Deployment/gateway: terminationGracePeriodSeconds 45s is not more than the graceful stop 50s"}},
		{"gateway drain_delay unreadable", []fixture.Edit{{ID: cmGW, Old: "drain_delay: 5s", New: "drain_delay: 5"}}, nil,
			[]string{`Deployment/gateway: its configuration: server.drain_delay: time: missing unit in duration "5"`}},
		{"admin port: probe and annotation moved with admin_listen", []fixture.Edit{adminListen, adminPort, probeOnAdmin, annotation9090}, nil, nil},
		{"admin port: admin_listen from its environment, probe and annotation moved", []fixture.Edit{envGW("GATEWAY__SERVER__ADMIN_LISTEN", ":9090"), adminPort, probeOnAdmin, annotation9090}, nil, nil},
		{"admin port: probe and annotation left on http", []fixture.Edit{adminListen}, nil,
			[]string{`Deployment/gateway: annotation prometheus.io/port "8080" is not the port of server.admin_listen (9090), which serves /metrics`,
				"Deployment/gateway: readiness probe port http (8080) is not the port of server.admin_listen (9090), which serves /readyz"}},
		{"admin port: admin_listen from its environment, probe and annotation on http", []fixture.Edit{envGW("GATEWAY__SERVER__ADMIN_LISTEN", "0.0.0.0:9090")}, nil,
			[]string{`Deployment/gateway: annotation prometheus.io/port "8080" is not the port of server.admin_listen (9090)`,
				"Deployment/gateway: readiness probe port http (8080) is not the port of server.admin_listen (9090)"}},
		{"admin port: annotation left on http", []fixture.Edit{adminListen, adminPort, probeOnAdmin}, nil,
			[]string{`Deployment/gateway: annotation prometheus.io/port "8080" is not the port of server.admin_listen (9090), which serves /metrics`}},
		{"admin port: probe by number on http", []fixture.Edit{adminListen, annotation9090, {ID: gw, Old: "path: /readyz\n            port: http", New: "path: /readyz\n            port: 8080"}}, nil,
			[]string{"Deployment/gateway: readiness probe port 8080 (8080) is not the port of server.admin_listen (9090), which serves /readyz"}},
		{"no admin_listen: probe and annotation on another port", []fixture.Edit{adminPort, probeOnAdmin, annotation9090}, nil,
			[]string{`Deployment/gateway: annotation prometheus.io/port "9090" is not the port of listen (8080), which serves /metrics`,
				"Deployment/gateway: readiness probe port admin (9090) is not the port of listen (8080), which serves /readyz"}},
		{"annotation not a number", []fixture.Edit{{ID: gw, Old: `prometheus.io/port: "8080"`, New: "prometheus.io/port: http"}}, nil,
			[]string{`Deployment/gateway: annotation prometheus.io/port "http" is not the port of listen (8080), which serves /metrics`}},
		{"no annotation: nothing to agree with", []fixture.Edit{{ID: gw, Old: "        prometheus.io/port: \"8080\"\n", New: ""}}, nil, nil},
		{"listen on loopback", []fixture.Edit{{ID: cmGW, Old: `listen: ":8080"`, New: `listen: "127.0.0.1:8080"`}}, nil,
			[]string{`Deployment/gateway: its configuration: listen "127.0.0.1:8080" is a loopback address`}},
		{"listen missing is the loopback default", []fixture.Edit{{ID: cmGW, Old: `listen: ":8080"`, New: ""}}, nil,
			[]string{`Deployment/gateway: its configuration: listen "127.0.0.1:8080" is a loopback address`}},
		{"admin_listen without a port", []fixture.Edit{{ID: cmGW, Old: "drain_delay: 5s", New: "drain_delay: 5s\n      admin_listen: \"9090\""}}, nil,
			[]string{`Deployment/gateway: its configuration: server.admin_listen "9090": address 9090: missing port in address`}},
		{"gateway reading no file of its ConfigMap", []fixture.Edit{{ID: gw, Old: "- /etc/shopgate/config/gateway.yaml", New: "- /etc/shopgate/config/gw.yaml"}}, nil,
			[]string{`Deployment/gateway: -config /etc/shopgate/config/gw.yaml: ConfigMap "gateway-config-ctm798km24" has no key "gw.yaml"`}},
		{"no gateway", []fixture.Edit{{ID: gw, Drop: true}}, nil,
			[]string{"Deployment/gateway: not rendered", "PodDisruptionBudget/gateway: selector app.kubernetes.io/name=gateway picks no", "Service/gateway: selector"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext := tt.external
			if ext == nil {
				ext = fixture.External
			}
			data := fixture.Dev(t, tt.edits...)
			got := rules.Check(decode(t, data), rules.Options{External: ext})
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestNoLivenessProbe(t *testing.T) {
	objs := decode(t, fixture.Dev(t, fixture.Edit{ID: order, Old: "        livenessProbe:\n          failureThreshold: 3\n          grpc:\n            port: 9101\n          periodSeconds: 10\n", New: ""}))
	got := rules.Check(objs, rules.Options{External: fixture.External})
	if len(got) != 1 || !strings.Contains(got[0], `Deployment/order: container "order" has no liveness probe`) {
		t.Fatalf("problems %q, want the order's missing liveness probe", got)
	}
}

// The order Deployment's pieces in the production fixture.
const (
	orderDatabaseEnv = "        - name: ORDERD__DATABASE_URL\n          valueFrom:\n            secretKeyRef:\n              key: url\n              name: shop-database\n"
	orderSpread      = "      topologySpreadConstraints:\n      - labelSelector:\n          matchLabels:\n            app.kubernetes.io/name: order\n        matchLabelKeys:\n        - pod-template-hash\n        maxSkew: 1\n        topologyKey: kubernetes.io/hostname\n        whenUnsatisfiable: ScheduleAnyway\n"
	orderArgsEnd     = "        - -broker-password-file=/etc/shopgate/broker-auth/password\n"
)

// orderArg adds an argument to the order's container in the production fixture.
func orderArg(arg string) fixture.Edit {
	return fixture.Edit{ID: order, Old: orderArgsEnd, New: orderArgsEnd + "        - " + arg + "\n"}
}

// TestCheckReplicas: what replicas need, on the production overlay (replicated on PostgreSQL)
// and the dev overlay (one replica each on SQLite), one edit at a time.
func TestCheckReplicas(t *testing.T) {
	noDatabaseEnv := fixture.Edit{ID: order, Old: orderDatabaseEnv, New: ""}
	tests := []struct {
		name    string
		fixture func(testing.TB, ...fixture.Edit) []byte
		edits   []fixture.Edit
		want    []string // substrings, one per problem, in the sorted order of the problems
	}{
		{name: "the production overlay as rendered", fixture: fixture.Production},
		{"production: a service without a budget", fixture.Production, []fixture.Edit{{ID: "PodDisruptionBudget/order", Drop: true}},
			[]string{"Deployment/order: 2 replicas and no PodDisruptionBudget selects its pods"}},
		{"production: a service without a database URL", fixture.Production, []fixture.Edit{noDatabaseEnv},
			[]string{`Deployment/order: container "order": 2 replicas and no database URL (-database-url or $ORDERD__DATABASE_URL): each replica would keep its own SQLite file`}},
		{"production: a database URL as an argument", fixture.Production, []fixture.Edit{noDatabaseEnv, orderArg("-database-url=postgres://shop@db:5432/shop")}, nil},
		{"production: a database URL as a literal variable", fixture.Production,
			[]fixture.Edit{{ID: order, Old: orderDatabaseEnv, New: "        - name: ORDERD__DATABASE_URL\n          value: postgresql://shop@db/shop\n"}}, nil},
		{"production: a database URL that is not PostgreSQL, its password hidden", fixture.Production, []fixture.Edit{orderArg("-database-url=mysql://shop:s3cret@db/shop")},
			[]string{`Deployment/order: container "order": database URL "mysql://shop:xxxxx@db/shop" is not postgres://`}},
		{"production: no spread over nodes", fixture.Production, []fixture.Edit{{ID: order, Old: orderSpread, New: ""}},
			[]string{"Deployment/order: 2 replicas and neither topologySpreadConstraints nor a pod anti-affinity on kubernetes.io/hostname"}},
		{"production: a spread over zones only", fixture.Production, []fixture.Edit{{ID: order, Old: "topologyKey: kubernetes.io/hostname", New: "topologyKey: topology.kubernetes.io/zone"}},
			[]string{"Deployment/order: 2 replicas and neither topologySpreadConstraints nor a pod anti-affinity"}},
		{"production: a pod anti-affinity instead of a spread", fixture.Production, []fixture.Edit{{ID: order, Old: orderSpread,
			New: "      affinity:\n        podAntiAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n          - weight: 100\n            podAffinityTerm:\n              topologyKey: kubernetes.io/hostname\n              labelSelector:\n                matchLabels:\n                  app.kubernetes.io/name: order\n"}}, nil},
		{"production: streams at one replica on a NATS cluster", fixture.Production, []fixture.Edit{{ID: order, Old: "        - -broker-replicas=3\n", New: ""}},
			[]string{`Deployment/order: container "order": -broker-url lists 3 NATS servers (a cluster) but -broker-replicas is 1 (the default)`}},
		{"production: Kafka needs no -broker-replicas", fixture.Production, []fixture.Edit{
			{ID: order, Old: "        - -broker-replicas=3\n", New: ""},
			{ID: order, Old: "- -broker-url=$(BROKER_URL)", New: "- -broker-url=kafka://k0:9092,k1:9092,k2:9092"}}, nil},
		{"production: a service without a broker", fixture.Production, []fixture.Edit{{ID: order, Old: "        - -broker-url=$(BROKER_URL)\n", New: ""}},
			[]string{`Deployment/order: container "order": no -broker-url: its events would go through a broker embedded in its own pod`}},
		{"dev: two replicas on the SQLite claim", fixture.Dev, []fixture.Edit{{ID: order, Old: "replicas: 1", New: "replicas: 2"}},
			[]string{"Deployment/order: 2 replicas and no PodDisruptionBudget",
				`Deployment/order: 2 replicas mount the ReadWriteOnce claim "order-data"`,
				`Deployment/order: container "order": 2 replicas and no database URL`}},
		{"dev: a rolling update on the SQLite claim", fixture.Dev, []fixture.Edit{{ID: order, Old: "type: Recreate", New: "type: RollingUpdate"}},
			[]string{`Deployment/order: strategy RollingUpdate with the ReadWriteOnce claim "order-data": the new pod waits for the old one's volume`}},
		{"dev: a ReadWriteMany claim may be rolled", fixture.Dev, []fixture.Edit{
			{ID: order, Old: "type: Recreate", New: "type: RollingUpdate"},
			{ID: "PersistentVolumeClaim/order-data", Old: "- ReadWriteOnce", New: "- ReadWriteMany"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rules.Check(decode(t, tt.fixture(t, tt.edits...)), rules.Options{External: fixture.External})
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestCheckFiles: the files the services' flags name are in their volumes.
func TestCheckFiles(t *testing.T) {
	const passwordFile = "-broker-password-file=/etc/shopgate/broker-auth/password"
	tests := []struct {
		name  string
		edits []fixture.Edit
		want  []string
	}{
		{"the broker's password outside every volume", []fixture.Edit{{ID: order, Old: passwordFile, New: "-broker-password-file=/etc/shopgate/broker/password"}},
			[]string{`Deployment/order: container "order": -broker-password-file /etc/shopgate/broker/password: no volume of the container is mounted there`}},
		{"a file the Secret's items leave out", []fixture.Edit{{ID: order, Old: passwordFile, New: "-broker-password-file=/etc/shopgate/broker-auth/user"}},
			[]string{`Deployment/order: container "order": -broker-password-file /etc/shopgate/broker-auth/user: the volume "broker-auth" (Secret "shop-broker-auth") holds only the items it lists, not "user"`}},
		{"the JWKS moved, its volume not", []fixture.Edit{{ID: "Deployment/payment", Old: "-passport-jwks=/etc/shopgate/passport-jwks/jwks.json", New: "-passport-jwks=/etc/shopgate/jwks/jwks.json"}},
			[]string{`Deployment/payment: container "payment": -passport-jwks /etc/shopgate/jwks/jwks.json: no volume of the container is mounted there`}},
		{"a file in an emptyDir cannot be known", []fixture.Edit{orderArg("-upstream-tls-ca=/tmp/ca.pem")}, nil},
		{"a relative path is not checked", []fixture.Edit{orderArg("-upstream-tls-ca=ca.pem")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rules.Check(decode(t, fixture.Production(t, tt.edits...)), rules.Options{External: fixture.External})
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}
