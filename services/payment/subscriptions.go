package payment

import "github.com/acme/shopgate/services/events"

// Subscriptions is what the payment service consumes, under its consumer name: an order to
// charge, and an order cancelled (refund what was captured). Run it with events.Consume.
func (s *Service) Subscriptions() events.Consumer {
	return events.Consumer{Name: Consumer, Routes: []events.Route{
		events.On(s.HandleOrderCreated),
		events.On(s.HandleOrderCancelled),
	}}
}
