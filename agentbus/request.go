package agentbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// Request modes.
const (
	// Durable requests are stored in the A2A stream like any message: they
	// survive a consumer restart and keep their place in the agent's order.
	Durable RequestMode = iota
	// Direct requests go to the consumer that owns the agent's partition over
	// core NATS: lowest latency, at most once, not ordered with the agent's
	// stored messages, and failing at once when no member owns the partition.
	Direct
	// Auto requests go direct when a consumer owns the agent's partition and
	// are stored like Durable ones when none does (NATS answers a direct
	// request nobody received at once, so it is never handled twice): the
	// latency of Direct, and a request that waits for a consumer during a
	// hand-over or a scale step instead of failing.
	Auto
)

// RequestMode chooses how Request carries a request.
type RequestMode uint8

// DirectSubjectPrefix starts the subjects of direct requests:
// a2a.direct.<pool>.<partition>.<agent>.
const DirectSubjectPrefix = "a2a.direct"

// HeaderError carries a handler's error text in an error reply.
const HeaderError = "error"

var (
	// ErrRemote wraps the error a handler returned for a direct request.
	ErrRemote = errors.New("agentbus: the agent's handler failed")
	// ErrNoConsumer is returned by a direct request when no consumer owns
	// the agent's partition right now.
	ErrNoConsumer = errors.New("agentbus: no consumer serves the agent's partition")
)

// replies routes the replies to this bus's durable requests.
type replies struct {
	once    sync.Once
	err     error
	prefix  string // replies arrive on prefix.<request ID>
	sub     *nats.Subscription
	mu      sync.Mutex
	waiting map[string]chan *codec.Envelope // request ID -> its waiter (size one)
}

// Request sends env to env.To and waits for the handler's reply (see
// Reply), the A2A message/send round trip. The reply comes back on this
// bus's own subject; a reply to a requester that has gone is dropped and
// blocks nobody. When ctx ends first Request returns ctx's error; a durable
// request may still be handled later.
func (b *Bus) Request(ctx context.Context, env *codec.Envelope, mode RequestMode) (reply *codec.Envelope, err error) {
	ctx, span := b.startRequest(ctx, env, mode)
	if span != nil {
		defer func() {
			span.SetAttributes(tracing.MessageID.String(env.ID))
			endSpan(span, err)
		}()
	}
	return b.request(ctx, env, mode)
}

func (b *Bus) request(ctx context.Context, env *codec.Envelope, mode RequestMode) (*codec.Envelope, error) {
	switch mode {
	case Direct:
		return b.requestDirect(ctx, env)
	case Auto:
		reply, err := b.requestDirect(ctx, env)
		if !errors.Is(err, ErrNoConsumer) {
			return reply, err
		}
	}
	if err := b.replies.init(b); err != nil {
		return nil, err
	}
	if env.ID == "" {
		env.ID = newID()
	}
	env.ReplyTo = b.replies.prefix + "." + env.ID
	ch := make(chan *codec.Envelope, 1)
	b.replies.mu.Lock()
	b.replies.waiting[env.ID] = ch
	b.replies.mu.Unlock()
	defer func() {
		b.replies.mu.Lock()
		delete(b.replies.waiting, env.ID)
		b.replies.mu.Unlock()
	}()
	if err := b.Send(ctx, env); err != nil {
		return nil, err
	}
	select {
	case reply := <-ch:
		return reply, replyErr(env.To, reply)
	case <-ctx.Done():
		return nil, fmt.Errorf("agentbus: request %s to %s: %w", env.ID, env.To, context.Cause(ctx))
	}
}

// init subscribes to this bus's reply subjects on first use.
func (r *replies) init(b *Bus) error {
	r.once.Do(func() {
		nc := b.conns[0]
		r.prefix = nc.NewInbox()
		r.waiting = map[string]chan *codec.Envelope{}
		r.sub, r.err = nc.Subscribe(r.prefix+".*", func(m *nats.Msg) {
			AckReply(m)
			var reply codec.Envelope
			if err := b.codec.DecodeEnvelope(m.Data, &reply); err != nil {
				b.cfg.log.Warn("undecodable reply dropped", "subject", m.Subject, "err", err)
				return
			}
			r.mu.Lock()
			ch := r.waiting[reply.CorrelationID]
			delete(r.waiting, reply.CorrelationID)
			r.mu.Unlock()
			if ch != nil {
				ch <- &reply // size one, and removed: never blocks
			}
		})
	})
	return r.err
}

// requestDirect sends env over core NATS to the consumer owning its partition.
func (b *Bus) requestDirect(ctx context.Context, env *codec.Envelope) (*codec.Envelope, error) {
	if err := b.validate(env); err != nil {
		return nil, err
	}
	subject, frame, _, err := b.directMsg(ctx, env, false)
	if err != nil {
		return nil, err
	}
	m, err := b.conns[0].RequestWithContext(ctx, subject, frame)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w: request to %s", ErrNoConsumer, env.To)
	}
	if err != nil {
		return nil, fmt.Errorf("agentbus: request %s to %s: %w", env.ID, env.To, err)
	}
	var reply codec.Envelope
	if err := b.codec.DecodeEnvelope(m.Data, &reply); err != nil {
		return nil, fmt.Errorf("agentbus: reply from %s: %w", env.To, err)
	}
	return &reply, replyErr(env.To, &reply)
}

// directMsg returns the subject of env's direct request,
// a2a.direct.<pool>.<partition>.<agent> (its partition's owner answers),
// and env's frame, which carries ctx's trace context; with send, that of
// env's send span, which it starts (the caller ends it; nil when tracing
// is off).
func (b *Bus) directMsg(ctx context.Context, env *codec.Envelope, send bool) (subject string, frame []byte, span trace.Span, err error) {
	_, _, stored, err := b.destination(ctx, env)
	if err != nil {
		return "", nil, nil, err
	}
	subject = DirectSubjectPrefix + stored[len(placement.SubjectPrefix):]
	if send {
		span = b.startSend(ctx, env, subject, true)
	} else {
		tracing.Inject(ctx, &env.Headers)
	}
	frame, err = b.codec.EncodeEnvelope(nil, env)
	if err != nil {
		err = fmt.Errorf("agentbus: encode request: %w", err)
		endSpan(span, err)
		return "", nil, nil, err
	}
	return subject, frame, span, nil
}

// SendDirect sends env as a direct request to the consumer that owns
// env.To's partition, over core NATS, with env.ReplyTo as the NATS reply
// subject, and does not wait: its answers (any number, as the handler
// sends them with Reply) arrive on the caller's own subscription. When no
// member owns the partition, NATS answers on env.ReplyTo at once with an
// empty message whose Status header is 503 (no responders).
func (b *Bus) SendDirect(ctx context.Context, env *codec.Envelope) (err error) {
	if err := b.validate(env); err != nil {
		return err
	}
	subject, frame, span, err := b.directMsg(ctx, env, true)
	if err != nil {
		return err
	}
	defer func() { endSpan(span, err) }()
	if err := b.conns[0].PublishMsg(&nats.Msg{Subject: subject, Reply: env.ReplyTo, Data: frame}); err != nil {
		return fmt.Errorf("agentbus: direct request %s to %s: %w", env.ID, env.To, err)
	}
	return nil
}

func replyErr(agent string, reply *codec.Envelope) error {
	if text, ok := reply.Headers.Lookup(HeaderError); ok {
		return fmt.Errorf("%w: %s: %s", ErrRemote, agent, text)
	}
	return nil
}

// Reply answers req with resp: it sets resp's routing fields (from req's
// To, to req's From, correlation ID req's ID) and publishes it to
// req.ReplyTo over core NATS. A request without ReplyTo (a plain Send) is
// not answered and Reply returns nil. Nothing waits for a requester that
// has gone.
func (b *Bus) Reply(ctx context.Context, req, resp *codec.Envelope) (err error) {
	if req.ReplyTo == "" {
		return nil
	}
	resp.From, resp.To, resp.CorrelationID = req.To, req.From, req.ID
	if resp.ID == "" {
		resp.ID = newID()
	}
	if span := b.startReply(ctx, req, resp); span != nil {
		defer func() { endSpan(span, err) }()
	}
	frame, err := b.codec.EncodeEnvelope(nil, resp)
	if err != nil {
		return fmt.Errorf("agentbus: encode reply: %w", err)
	}
	if d, ok := DeliveryOf(ctx); ok && !d.Direct {
		if prefix := replyPrefix(req.ReplyTo); !b.knowsReplyInterest(prefix) {
			return b.replyConfirmed(req, prefix, frame)
		}
	}
	if err := b.conns[0].Publish(req.ReplyTo, frame); err != nil {
		return fmt.Errorf("agentbus: reply to %s: %w", req.ID, err)
	}
	// Published is delivered as far as the bus can tell: a context that
	// ends now must not make the handler fail and reply again.
	return nil
}

// replyConfirmed sends the first reply of this bus to a requester's reply
// subjects (prefix.*) of a stored request as a request of its own, so that
// NATS says whether anybody receives it. A stored request reaches this
// member by a path of its own (the stream's leader, the consumer's), not
// the route its requester's subscription travels to this server on, so
// the subscription made just before the request may not be known here
// yet: NATS then answers "no responders" and the reply is sent again, with
// back-off, until it is received or replyInterestWait has passed (the
// requester has gone). A requester acknowledges it (the bus's and
// a2anats's reply subscriptions do); one that does not makes the first
// reply wait replyAckTimeout. Later replies to the prefix are plain
// publishes.
func (b *Bus) replyConfirmed(req *codec.Envelope, prefix string, frame []byte) error {
	wait := 2 * time.Millisecond
	deadline := time.Now().Add(replyInterestWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), replyAckTimeout)
		_, err := b.conns[0].RequestWithContext(ctx, req.ReplyTo, frame)
		cancel()
		switch {
		case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// Acknowledged, or received by a subscriber that does not
			// acknowledge: either way, there is interest.
			b.replyInterest.Put(prefix, struct{}{}, nil)
			return nil
		case !errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("agentbus: reply to %s: %w", req.ID, err)
		case time.Now().After(deadline):
			b.cfg.log.Debug("reply dropped: nobody subscribes to its subject", "request", req.ID, "subject", req.ReplyTo)
			return nil
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// How long a first reply waits for its requester's subscription to be
// known, and for its acknowledgement.
const (
	replyInterestWait = 5 * time.Second
	replyAckTimeout   = 250 * time.Millisecond
)

// replyPrefix is a reply subject without its last token: the requester's
// subscription (prefix.*).
func replyPrefix(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i > 0 {
		return subject[:i]
	}
	return subject
}

// AckReply acknowledges a reply sent as a request (the first reply of a
// bus to a requester, see Reply): reply subscriptions other than the bus's
// own call it for each message they get, so that the replier need not wait
// for its acknowledgement.
func AckReply(m *nats.Msg) {
	if m.Reply != "" {
		_ = m.Respond(nil)
	}
}

// knowsReplyInterest reports whether a reply to prefix was received
// lately.
func (b *Bus) knowsReplyInterest(prefix string) bool {
	_, ok := b.replyInterest.Get(prefix)
	return ok
}

// replyPrefixesKept bounds the reply prefixes a bus remembers receiving
// replies: twice this many.
const replyPrefixesKept = 4096
