package lease

// The states of a Lease, and what makes each transition safe.
//
//	Free     no claim. Held false, Revision 0.
//	Held     a claim: the revision of our last write to the key, and
//	         now < deadline, where deadline = (when that write was sent)
//	         + TTL - margin. Held true, Revision that revision.
//	Expired  a claim whose deadline has passed, not known lost: the key may
//	         still hold our write (the server expires it a little later) or
//	         may have expired already. Held false, Revision 0.
//
// Every transition but the self-fence is decided by the server's answer to
// a write that names the revision it expects (see conflict for what its
// refusals mean); the clock only ever takes a belief away, never grants
// one.
//
//	Free          --Acquire ok-->            Held     Create: the key did not exist
//	Free          --Acquire refused-->       Free     ErrHeld: someone holds it
//	                                                  (10071) or is writing it (10164)
//	Held, Expired --Renew ok-->              Held     Update at our revision: no one
//	                                                  wrote since and it did not expire
//	Held, Expired --Renew moved-->           Free     ErrLost: the revision is not
//	                                                  ours (10071)
//	Held, Expired --Renew other error-->     the same: neither renewed nor known
//	                                                  lost (a timeout; 10164, another
//	                                                  write in process, after retries)
//	Held          --now >= deadline-->       Expired  the self-fence, no I/O
//	Held, Expired --Release-->               Free     Delete at our revision, whatever
//	                                                  the answer (10071 is ErrLost)
//	any           --Forget-->                Free     no I/O: the key stays, as a
//	                                                  crashed holder's would
//	Free          --Keep adopts-->           Held or Expired (see Keep)
//
// Why Held is safe: the server stamps a write when it stores it, after we
// sent it, and expires the key TTL after that stamp; we stop believing
// TTL - margin after sending. So, with clocks that run at the same rate,
// our belief ends before the key can expire, and no one else can Create the
// key before it expires. A write whose answer is lost leaves the state as
// it was: if the server applied it, the next write at the old revision is a
// conflict, which is safe (we give up a key we hold) but costs a TTL: no
// one can take the key until our lost write expires. Keep, for keys that no
// other process writes, recovers such a write instead.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/a2abus/a2abus/internal/kvcas"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket creates the KV bucket of a set of leases, or updates its
// configuration: its TTL (the stream's MaxAge) makes a key expire ttl
// after its last write, and it keeps one revision per key.
func Bucket(ctx context.Context, js jetstream.JetStream, name, description string, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lease: bucket %s: TTL %v, want more than 0", name, ttl)
	}
	// One try is bounded and asked again while the cluster elects its
	// leaders (nobody answers), until ctx ends.
	for {
		actx, cancel := context.WithTimeout(ctx, bucketAttempt)
		kv, err := js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{
			Bucket: name, Description: description, TTL: ttl, History: 1, Replicas: replicas,
		})
		cancel()
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil || !kvcas.Transient(err) {
			return nil, fmt.Errorf("lease: bucket %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lease: bucket %s: %w", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bucketAttempt bounds one try of Bucket.
const bucketAttempt = 10 * time.Second

// Lease is a claim on one key of a KV bucket made by Bucket. Its methods
// are safe for concurrent use: Acquire, Renew, Keep and Release run one at
// a time; Held, Deadline, Revision and Forget do not wait for them.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	ttl    time.Duration
	margin time.Duration
	now    func() time.Time

	op sync.Mutex // held by the calls that write, across their I/O

	mu       sync.Mutex
	gen      uint64    // bumped by Forget: a write in flight then claims nothing
	rev      uint64    // revision of our last write; 0 when Free
	deadline time.Time // the self-fence of that write
	lost     *write    // the last write whose answer was lost; nil once one succeeds
}

// write is a write as sent.
type write struct {
	value []byte
	sent  time.Time
}

// New returns a Free lease on key in kv, whose TTL must be ttl.
func New(kv jetstream.KeyValue, key string, ttl time.Duration, opts ...Option) (*Lease, error) {
	l := &Lease{kv: kv, key: key, ttl: ttl, margin: ttl / 10, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	switch {
	case kv == nil:
		return nil, errors.New("lease: no KV bucket")
	case key == "":
		return nil, errors.New("lease: empty key")
	case ttl <= 0:
		return nil, fmt.Errorf("lease: TTL %v, want more than 0", ttl)
	case l.margin < 0 || l.margin >= ttl:
		return nil, fmt.Errorf("lease: margin %v, want at least 0 and under the TTL %v", l.margin, ttl)
	case l.now == nil:
		return nil, errors.New("lease: nil clock")
	}
	return l, nil
}

// Acquire creates the key with value. It returns an error wrapping ErrHeld
// when the key exists (another holder's, or this lease's own claim). On
// any other error the lease stays Free, though the server may have applied
// the write (its answer was lost).
func (l *Lease) Acquire(ctx context.Context, value []byte) error {
	l.op.Lock()
	defer l.op.Unlock()
	return l.acquire(ctx, value)
}

func (l *Lease) acquire(ctx context.Context, value []byte) error {
	gen, rev := l.claim()
	if rev != 0 {
		return fmt.Errorf("%w: %s: this lease claims it already", ErrHeld, l.key)
	}
	sent := l.now()
	rev, err := kvcas.RetryBusy(ctx, func() (uint64, error) { return l.kv.Create(ctx, l.key, value) })
	l.mu.Lock()
	defer l.mu.Unlock()
	switch moved, busy := kvcas.Conflict(err); {
	case moved, busy:
		return fmt.Errorf("%w: %s: %w", ErrHeld, l.key, err)
	case l.gen != gen:
		return fmt.Errorf("%w: %s: forgotten while acquiring", ErrLost, l.key)
	case err != nil:
		l.lost = &write{value: bytes.Clone(value), sent: sent}
		return fmt.Errorf("lease: acquire %s: %w", l.key, err)
	}
	l.hold(rev, sent)
	return nil
}

// Renew writes value to the key at the revision of the lease's last write.
// It returns an error wrapping ErrLost when that revision is no longer the
// key's (the lease is then Free). On any other error, such as a timeout or
// a refusal because another write to the key was in process, the lease is
// neither renewed nor known lost: it keeps its claim, and Held turns false
// at the deadline of the last write that was answered.
func (l *Lease) Renew(ctx context.Context, value []byte) error {
	l.op.Lock()
	defer l.op.Unlock()
	return l.renew(ctx, value)
}

func (l *Lease) renew(ctx context.Context, value []byte) error {
	gen, rev := l.claim()
	if rev == 0 {
		return fmt.Errorf("%w: %s: no claim", ErrLost, l.key)
	}
	sent := l.now()
	rev, err := kvcas.RetryBusy(ctx, func() (uint64, error) { return l.kv.Update(ctx, l.key, value, rev) })
	l.mu.Lock()
	defer l.mu.Unlock()
	switch moved, busy := kvcas.Conflict(err); {
	case l.gen != gen:
		return fmt.Errorf("%w: %s: forgotten while renewing", ErrLost, l.key)
	case moved:
		l.drop() // l.lost stays: it may be what moved the revision
		return fmt.Errorf("%w: %s: %w", ErrLost, l.key, err)
	case busy:
		return fmt.Errorf("lease: renew %s: refused while another write to the key was in process: %w", l.key, err)
	case err != nil:
		l.lost = &write{value: bytes.Clone(value), sent: sent}
		return fmt.Errorf("lease: renew %s: %w", l.key, err)
	}
	l.hold(rev, sent)
	return nil
}

// Keep renews the lease, or acquires the key when the lease claims nothing
// or has just lost it: it is for keys that no other process writes (a
// member's own key), where a loss means the key expired. It also recovers
// a write whose answer was lost: when the key exists and holds exactly the
// bytes of the last such write, the lease adopts that revision (with that
// write's deadline) and renews it, where Acquire would return ErrHeld until
// the key expired. A key held with any other bytes is another holder's:
// Keep returns ErrHeld.
func (l *Lease) Keep(ctx context.Context, value []byte) error {
	l.op.Lock()
	defer l.op.Unlock()
	err := l.renew(ctx, value)
	if !errors.Is(err, ErrLost) {
		return err
	}
	err = l.acquire(ctx, value)
	if !errors.Is(err, ErrHeld) || !l.adopt(ctx) {
		return err
	}
	return l.renew(ctx, value)
}

// adopt makes the key's revision the lease's when the key holds the bytes
// of the last write whose answer was lost, and reports whether it did.
func (l *Lease) adopt(ctx context.Context) bool {
	l.mu.Lock()
	w, gen := l.lost, l.gen
	l.mu.Unlock()
	if w == nil {
		return false
	}
	e, err := l.kv.Get(ctx, l.key)
	if err != nil || !bytes.Equal(e.Value(), w.value) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen || l.rev != 0 {
		return false
	}
	l.hold(e.Revision(), w.sent)
	return true
}

// Release deletes the key at the revision of the lease's last write, so
// that a successor need not wait for the TTL, and leaves the lease Free
// whatever the answer. It returns an error wrapping ErrLost when the key is
// no longer ours (it is left as it is), and nil when the lease claims
// nothing.
func (l *Lease) Release(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	_, rev := l.claim()
	if rev == 0 {
		return nil
	}
	_, err := kvcas.RetryBusy(ctx, func() (uint64, error) { return 0, l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)) })
	l.mu.Lock()
	l.drop()
	l.lost = nil
	l.mu.Unlock()
	switch moved, busy := kvcas.Conflict(err); {
	case moved:
		return fmt.Errorf("%w: %s: %w", ErrLost, l.key, err)
	case busy:
		return fmt.Errorf("lease: release %s: refused while another write to the key was in process; it stays until it expires: %w", l.key, err)
	case err != nil:
		return fmt.Errorf("lease: release %s: %w", l.key, err)
	}
	return nil
}

// Forget drops the claim without touching the key, as a holder that
// crashed would: the key stays until it expires. A write in flight when
// Forget is called claims nothing when it returns.
func (l *Lease) Forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	l.drop()
	l.lost = nil
}

// Held reports whether the lease holds its key: it claims it and the
// deadline of its last write has not passed.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held()
}

func (l *Lease) held() bool { return l.rev != 0 && l.now().Before(l.deadline) }

// Deadline returns when Held turns false unless the lease is renewed:
// when its last answered write was sent, plus the TTL, minus the margin.
// It is the zero time when the lease claims nothing.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Revision returns the fencing token: the key's revision as the lease last
// wrote it, which the server checks on the lease's every write; 0 when the
// lease does not hold its key.
func (l *Lease) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held() {
		return 0
	}
	return l.rev
}

// claim returns the generation and the revision of the claim.
func (l *Lease) claim() (gen, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen, l.rev
}

// hold records an answered write; l.mu is held.
func (l *Lease) hold(rev uint64, sent time.Time) {
	l.rev, l.deadline, l.lost = rev, sent.Add(l.ttl-l.margin), nil
}

// drop makes the lease Free; l.mu is held.
func (l *Lease) drop() {
	l.rev, l.deadline = 0, time.Time{}
}
