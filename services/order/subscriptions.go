package order

import "github.com/acme/shopgate/services/events"

// Subscriptions is what the order service consumes, under its consumer name: the outcomes of
// the stock reservation and of the payment, which confirm or cancel the order. Run it with
// events.Consume.
func (s *Service) Subscriptions() events.Consumer {
	return events.Consumer{Name: Consumer, Routes: []events.Route{
		events.On(s.HandleStockReserved),
		events.On(s.HandleStockRejected),
		events.On(s.HandlePaymentCaptured),
		events.On(s.HandlePaymentDeclined),
	}}
}
