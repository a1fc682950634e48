// Package eventstest is what the services' tests share about events: reading what a service
// recorded in its outbox, and the trace contexts the saga tests hand over.
package eventstest

import (
	"database/sql"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"google.golang.org/protobuf/proto"
)

// The W3C trace contexts of the OrderCreated and of the OrderCancelled the saga tests hand
// over (in the handler's ctx, as events.On puts them). Do not modify them.
var (
	CreatedTrace   = map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "acme=1"}
	CancelledTrace = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
)

// Outbox returns the envelopes recorded for orderID in the outbox of db, oldest first.
func Outbox(t testing.TB, db *sql.DB, orderID string) []*eventsv1.Envelope {
	t.Helper()
	rows, err := db.Query(`SELECT envelope FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*eventsv1.Envelope
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		env := &eventsv1.Envelope{}
		if err := proto.Unmarshal(b, env); err != nil {
			t.Fatal(err)
		}
		if env.GetOrderId() == orderID {
			out = append(out, env)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
