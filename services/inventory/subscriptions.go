package inventory

import "github.com/acme/shopgate/services/events"

// Subscriptions is what the inventory service consumes, under its consumer name: an order to
// reserve stock for, and the order's final outcome (take the reservation out of stock, or
// release it). Run it with events.Consume.
func (s *Service) Subscriptions() events.Consumer {
	return events.Consumer{Name: Consumer, Routes: []events.Route{
		events.On(s.HandleOrderCreated),
		events.On(s.HandleOrderConfirmed),
		events.On(s.HandleOrderCancelled),
	}}
}
