package broker

import "errors"

// Errors returned by the broker; match them with errors.Is.
var (
	ErrClosed = errors.New("broker: closed")                 // the broker is shutting down
	ErrFull   = errors.New("broker: too many subscribers")   // Options.MaxSubscribers reached
	ErrSlow   = errors.New("broker: subscriber fell behind") // the subscriber's queue overflowed
	ErrEnded  = errors.New("broker: subscription closed")    // Close was called on the subscription
	// ErrKeyConflict: an idempotency key was used again for a different event.
	ErrKeyConflict = errors.New("broker: idempotency key reused for a different event")
	ErrNotRoom     = errors.New("broker: not a room") // Room was asked about a topic that is not one
	// ErrBusy: delivery stayed behind publishing for Options.PublishWait; nothing was accepted.
	ErrBusy = errors.New("broker: delivery is behind; publish not accepted")
)
