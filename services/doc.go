// Package services holds no code: it documents the saga that the three services below it
// (order, payment, inventory) complete together through events. The fourth, storefront (the
// front server), takes no part in it: it consumes and publishes no events and only reads the
// three over gRPC, on the caller's passport. Each service reacts in its own
// transaction (events.Saga: the inbox row, the effect and the event it publishes, through the
// outbox), and the services never call each other for it. The subscriptions are each service's
// subscriptions.go; the reactions its saga.go.
//
//	client --CreateOrder--> order: PENDING ----------------------> OrderCreated
//	                                                                    |
//	              +-----------------------------------------------------+
//	              v                                                     v
//	  inventory: reserve every line or none               payment: charge the payment method
//	    enough stock      -> StockReserved                  captured -> PaymentCaptured
//	    short or unknown  -> StockRejected{reason}          declined -> PaymentDeclined{reason}
//	    seen or tombstone -> nothing                        charged or tombstone -> nothing
//	              |                                                     |
//	              +--------------------------+--------------------------+
//	                                         v
//	  order, while the order is PENDING (an outcome for a final order changes nothing):
//	    StockReserved and PaymentCaptured, in either order -> CONFIRMED  -> OrderConfirmed
//	    StockRejected (first failure wins)                 -> CANCELLED  -> OrderCancelled{reason}
//	    PaymentDeclined (first failure wins)               -> CANCELLED  -> OrderCancelled{reason}
//	client --CancelOrder--> order, PENDING only            -> CANCELLED  -> OrderCancelled{reason}
//
//	  OrderConfirmed -> inventory: a held reservation is taken out of stock for good
//	                    (reserved -= q); publishes nothing
//	  OrderCancelled -> inventory: compensation, a held reservation is released
//	                    (available += q, reserved -= q) -> StockReleased;
//	                    no reservation yet -> tombstone (a late OrderCreated reserves nothing)
//	                 -> payment:   compensation, a captured payment is refunded -> PaymentRefunded;
//	                    no payment yet -> tombstone (a late OrderCreated charges nothing);
//	                    a declined payment stays as it is
//	admin --RefundPayment--> payment: a captured payment is refunded    -> PaymentRefunded
//
//	  StockReleased and PaymentRefunded end the flow: no service consumes them.
//
// Who consumes what (consumer name, event types):
//
//	order      StockReserved, StockRejected, PaymentCaptured, PaymentDeclined
//	inventory  OrderCreated, OrderConfirmed, OrderCancelled
//	payment    OrderCreated, OrderCancelled
package services
