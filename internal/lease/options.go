package lease

import "time"

// Option configures a Lease.
type Option func(*Lease)

// WithClock makes the lease read the time from now (default time.Now) to
// compute its deadline and to answer Held. The clock must run at the
// server's rate: a clock that runs slow makes the lease believe it holds
// its key after the server let it expire (tests inject one to show that).
func WithClock(now func() time.Time) Option { return func(l *Lease) { l.now = now } }

// WithMargin sets how long before the TTL since a write was sent the lease
// stops believing it holds its key (default a tenth of the TTL): it absorbs
// the difference between the holder's clock and the servers' (rates, and
// in a cluster the offset between the servers that time the key). It must
// be at least 0 and under the TTL.
func WithMargin(d time.Duration) Option { return func(l *Lease) { l.margin = d } }
