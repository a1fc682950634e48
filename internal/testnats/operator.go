package testnats

import (
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Operator is the decentralized (JWT) authentication of a test cluster: an operator, its system
// account, and one application account with JetStream, whose users log in with a credentials
// file (UserCreds), as nsc sets it up. Pass it to StartCluster with WithOperator.
type Operator struct {
	claims         *jwt.OperatorClaims
	sysPub, accPub string
	sysJWT, accJWT string
	accKP          nkeys.KeyPair
}

// NewOperator makes an operator with its system account and an application account whose
// JetStream use is unlimited.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testnats: operator: %v", err)
		}
	}
	opKP, err := nkeys.CreateOperator()
	must(err)
	opPub, err := opKP.PublicKey()
	must(err)
	o := &Operator{claims: jwt.NewOperatorClaims(opPub)}
	o.claims.Name = "shopgate-test"

	account := func(name string, jetStream bool) (string, string, nkeys.KeyPair) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if jetStream {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit}
		}
		token, err := ac.Encode(opKP)
		must(err)
		return pub, token, kp
	}
	o.sysPub, o.sysJWT, _ = account("SYS", false)
	o.claims.SystemAccount = o.sysPub
	o.accPub, o.accJWT, o.accKP = account("SHOP", true)
	return o
}

// UserCreds returns the content of a credentials file (user JWT and nkey seed) for a new user
// name of the application account.
func (o *Operator) UserCreds(t testing.TB, name string) []byte {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("testnats: user: %v", err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	token, err := uc.Encode(o.accKP)
	if err != nil {
		t.Fatalf("testnats: user JWT: %v", err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatalf("testnats: credentials: %v", err)
	}
	return creds
}

// WithOperator runs the cluster in operator mode with op's accounts (in a memory resolver):
// clients log in with a credentials file of op (UserCreds). Not with WithUsers, WithToken or
// WithNKeys. Default: no authentication.
func WithOperator(op *Operator) Option {
	return func(o *options) { o.operator = op }
}

// configure sets the operator mode on a node's options.
func (op *Operator) configure(o *server.Options) error {
	r := &server.MemAccResolver{}
	if err := r.Store(op.sysPub, op.sysJWT); err != nil {
		return err
	}
	if err := r.Store(op.accPub, op.accJWT); err != nil {
		return err
	}
	o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
	o.SystemAccount = op.sysPub
	o.AccountResolver = r
	return nil
}
