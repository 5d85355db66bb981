// Package lease is a claim on one key of a JetStream KV bucket that expires
// unless it is renewed, fenced by the key's revision.
//
// The bucket's TTL (its stream's MaxAge) makes a key expire that long after
// its last write. A Lease creates the key (Acquire), writes it again at the
// revision it last wrote (Renew), and deletes it at that revision
// (Release); the server refuses each of these writes when the key's
// revision has moved, so a holder whose key expired, or was taken, learns
// it from its next write and can change nothing on the way.
//
//	kv, err := lease.Bucket(ctx, js, "a2abus_scaler", "who leads", 10*time.Second, 3)
//	l, err := lease.New(kv, "leader", 10*time.Second)
//	err = l.Acquire(ctx, value) // errors.Is(err, lease.ErrHeld): another leads
//	...
//	err = l.Renew(ctx, value)   // every TTL/3; errors.Is(err, lease.ErrLost): stop at once
//	if l.Held() {               // false from the deadline on while renewals fail
//		lead()
//	}
//	err = l.Release(ctx)        // a successor need not wait for the TTL
//
// # The invariant
//
// At most one holder believes it holds a key (Held reports true) at any
// moment, given clocks that run at the same rate as the servers'. Held is
// true until the deadline of the last write the server answered, measured
// from before that write was sent: sent + TTL - margin. The server measures
// the key's expiry from after: from the time it stored the write. So a
// holder that cannot renew stops believing before the key can expire, and
// no one can Create the key before it expires. The margin (WithMargin,
// default TTL/10) absorbs clocks that do not quite agree; in a cluster the
// servers' wall clocks time the expiry, and must agree to within it.
//
// Held is a belief for deciding whether to act. The fence is the revision:
// Revision returns the revision of the lease's last write, the token the
// server checks on the lease's every write to the key; a write elsewhere
// that must be fenced has to carry it and be checked against it, as the
// key's own writes are.
//
// On a cluster the stream leader refuses a write to a key while another
// write to it is in process (err_code 10164), which can be the holder's
// own previous write, answered a moment before: the lease retries such a
// write a few times and never takes the refusal for a loss.
//
// Keep is for keys that no other process writes (a member's own key): it
// renews, acquires again after a loss, and recovers its own write whose
// answer was lost.
//
// # Concurrency
//
// All functions and methods are safe for concurrent use. The methods that
// write (Acquire, Renew, Keep, Release) run one at a time on a Lease; Held,
// Deadline, Revision and Forget do not wait for them.
package lease
