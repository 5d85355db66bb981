package a2anats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"
)

// ProtocolBinding identifies this binding in an agent card's
// supportedInterfaces, a URI as the A2A specification asks of custom
// bindings. The interface's URL is nats://<server>/a2a/<agentID>; a client
// uses its own bus and reads only the agent ID from it.
const ProtocolBinding a2a.TransportProtocol = "https://github.com/a2abus/a2abus/a2anats/v1"

// DefaultTimeout bounds a unary call whose context has no deadline, as the
// A2A SDK's HTTP transports do. Streams are bounded by their context only.
const DefaultTimeout = 3 * time.Minute

// maxQueued is how many answers may wait for a slow reader of a stream;
// past it the call fails rather than buffer without bound. A unary call
// has room for its one answer (after, for Auto, NATS's no-responders).
const (
	maxQueued   = 256
	unaryQueued = 2
)

var (
	// ErrEventsLost is returned when answers to a call were lost on the
	// way (a gap in their numbers) or the reader fell maxQueued answers
	// behind: the stream is cut rather than silently missing events.
	ErrEventsLost = errors.New("a2anats: answers to the call were lost")
	// ErrBadURL is returned for an interface URL that names no agent.
	ErrBadURL = errors.New("a2anats: interface URL names no agent")
)

// Interface returns the agent card interface of agentID on this binding.
// server is the NATS server's host:port as clients know it, only for
// people reading the card; "" writes "localhost".
func Interface(agentID, server string) *a2a.AgentInterface {
	if server == "" {
		server = "localhost"
	}
	return a2a.NewAgentInterface("nats://"+server+"/a2a/"+agentID, ProtocolBinding)
}

// AgentFromURL returns the agent ID an interface URL of this binding names.
func AgentFromURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	id, ok := strings.CutPrefix(u.Path, "/a2a/")
	if !ok || u.Scheme != "nats" {
		return "", fmt.Errorf("%w: %q: want nats://<server>/a2a/<agentID>", ErrBadURL, raw)
	}
	if err := placement.ValidateAgentID(id); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadURL, raw, err)
	}
	return id, nil
}

// Client makes A2A calls over a bus: one subscription carries the answers
// to all its calls. It is safe for concurrent use.
type Client struct {
	bus    *agentbus.Bus
	mode   agentbus.RequestMode
	from   string
	tracer *tracing.Tracer

	once   sync.Once
	err    error
	prefix string // answers arrive on prefix.<call ID>
	sub    *nats.Subscription
	mu     sync.Mutex
	calls  map[string]*pending
}

// ClientOption configures a Client.
type ClientOption func(*Client) error

// ClientMode chooses how calls travel: agentbus.Auto (the default) sends
// each call over core NATS to the member that pulls the call's partition
// and, when NATS answers that nobody received it, stores it in the A2A
// stream, where it waits for a member (a hand-over, a scale step);
// agentbus.Durable always stores messages (SendMessage and its streaming
// form), which are then acknowledged only when their call has ended and
// run again by another member if theirs dies, and sends the calls on
// existing tasks as Auto does, so that a cancel does not wait behind its
// task; agentbus.Direct never stores a call, failing at once with
// agentbus.ErrNoConsumer when nobody pulls the partition.
func ClientMode(m agentbus.RequestMode) ClientOption {
	return func(c *Client) error {
		if m != agentbus.Durable && m != agentbus.Direct && m != agentbus.Auto {
			return fmt.Errorf("a2anats: unknown request mode %d", m)
		}
		c.mode = m
		return nil
	}
}

// ClientFrom sets the agent ID calls are sent from (default none).
func ClientFrom(agentID string) ClientOption {
	return func(c *Client) error {
		if err := placement.ValidateAgentID(agentID); err != nil {
			return fmt.Errorf("a2anats: from: %w", err)
		}
		c.from = agentID
		return nil
	}
}

// NewClient returns a Client that calls over bus.
func NewClient(bus *agentbus.Bus, opts ...ClientOption) (*Client, error) {
	if bus == nil {
		return nil, errors.New("a2anats: NewClient needs a bus")
	}
	c := &Client{bus: bus, mode: agentbus.Auto, tracer: tracing.New(bus.TracerProvider())}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// WithTransport is the a2aclient factory option that makes a2aclient use
// this binding over bus, for the agents whose cards list it:
//
//	client, err := a2aclient.NewFromCard(ctx, card, a2anats.WithTransport(bus))
//
// A bad option makes every transport this factory creates fail with its
// error.
func WithTransport(bus *agentbus.Bus, opts ...ClientOption) a2aclient.FactoryOption {
	c, err := NewClient(bus, opts...)
	if err != nil {
		return a2aclient.WithTransport(ProtocolBinding, a2aclient.TransportFactoryFn(
			func(context.Context, *a2a.AgentCard, *a2a.AgentInterface) (a2aclient.Transport, error) {
				return nil, err
			}))
	}
	return a2aclient.WithTransport(ProtocolBinding, c)
}

// Create implements a2aclient.TransportFactory: a transport to the agent
// iface's URL names.
func (c *Client) Create(_ context.Context, _ *a2a.AgentCard, iface *a2a.AgentInterface) (a2aclient.Transport, error) {
	id, err := AgentFromURL(iface.URL)
	if err != nil {
		return nil, err
	}
	return c.Transport(id)
}

// Transport returns the a2aclient.Transport to agentID.
func (c *Client) Transport(agentID string) (a2aclient.Transport, error) {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return nil, fmt.Errorf("a2anats: %w", err)
	}
	if err := c.init(); err != nil {
		return nil, err
	}
	return &transport{c: c, agent: agentID}, nil
}

// pending is one call's queue of answers.
type pending struct {
	ch   chan answer     // size maxQueued or unaryQueued; closed on overflow
	next int             // the sequence number expected next
	lost error           // why answers were lost, once they were
	call *codec.Envelope // the call, while an Auto call may be stored
}

// answer is one answer to a call, or NATS saying nobody received it.
type answer struct {
	env          *codec.Envelope
	noResponders bool
}

// init subscribes to the answers on first use.
func (c *Client) init() error {
	c.once.Do(func() {
		nc := c.bus.Conn()
		c.prefix = nc.NewInbox()
		c.calls = map[string]*pending{}
		c.sub, c.err = nc.Subscribe(c.prefix+".*", c.route)
		if c.err != nil {
			c.err = fmt.Errorf("a2anats: subscribe to answers: %w", c.err)
		}
	})
	return c.err
}

// route hands one answer to its call, in order.
func (c *Client) route(m *nats.Msg) {
	agentbus.AckReply(m)
	id := m.Subject[len(c.prefix)+1:]
	var a answer
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		a.noResponders = true // a direct call nobody received
	} else {
		a.env = new(codec.Envelope)
		if err := c.bus.Codec().DecodeEnvelope(m.Data, a.env); err != nil {
			a.env = &codec.Envelope{Kind: KindError}
			a.env.Headers.Set(HeaderError, "undecodable answer: "+err.Error())
			a.env.Headers.Set(HeaderCode, strconv.Itoa(ErrorCode(a2a.ErrInvalidAgentResponse)))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.calls[id]
	if p == nil || p.lost != nil {
		return // the call has ended: its requester is gone
	}
	if !a.noResponders {
		seqText, numbered := a.env.Headers.Lookup(HeaderSeq)
		if _, failed := a.env.Headers.Lookup(HeaderError); !numbered && failed {
			// The bus's own error reply (agentbus: the handler failed for
			// good, or the member has none): it ends the call with its
			// reason, as an internal error.
			a.env.Kind = KindError
		} else if seq, _ := strconv.Atoi(seqText); seq != p.next {
			p.lost = fmt.Errorf("%w: answer %d arrived when %d was due", ErrEventsLost, seq, p.next)
			if seq == 1 {
				p.lost = fmt.Errorf("%w: the call was run again from its start after %d answers (its member stopped or died mid-call)", ErrEventsLost, p.next-1)
			}
			close(p.ch)
			return
		}
		p.next++
	}
	select {
	case p.ch <- a:
	default:
		p.lost = fmt.Errorf("%w: the reader fell %d answers behind", ErrEventsLost, cap(p.ch))
		close(p.ch)
	}
}

// transport is the a2aclient.Transport to one agent.
type transport struct {
	c     *Client
	agent string
}

var _ a2aclient.Transport = (*transport)(nil)

// call sends one call and returns the queue of its answers (room for
// queued) and the function that ends it.
func (t *transport) call(ctx context.Context, method string, svc a2aclient.ServiceParams, params any, queued int) (*pending, func(), error) {
	c := t.c
	payload, err := json.Marshal(params)
	if err != nil {
		return nil, nil, fmt.Errorf("a2anats: encode %s request: %w", method, err)
	}
	env := &codec.Envelope{From: c.from, To: t.agent, Kind: KindPrefix + method, Payload: payload}
	setService(&env.Headers, svc)
	env.ID = nuid.Next()
	env.Headers.Set(agentbus.HeaderContextID, conversation(params, env.ID))
	env.ReplyTo = c.prefix + "." + env.ID
	if d, ok := ctx.Deadline(); ok {
		env.Deadline = d.UnixMilli()
	}
	p := &pending{ch: make(chan answer, queued), next: 1}
	mode := c.mode
	if mode == agentbus.Durable && method != MethodSendMessage && method != MethodSendStreamingMessage {
		// A call on existing tasks goes direct first: stored, it could wait
		// behind the very task it is about (see Server).
		mode = agentbus.Auto
	}
	if mode == agentbus.Auto {
		p.call = env
	}
	c.mu.Lock()
	c.calls[env.ID] = p
	c.mu.Unlock()
	end := func() {
		c.mu.Lock()
		delete(c.calls, env.ID)
		c.mu.Unlock()
	}
	if err := t.send(ctx, env, mode); err != nil {
		end()
		return nil, nil, fmt.Errorf("a2anats: %s to %s: %w", method, t.agent, err)
	}
	return p, end, nil
}

// send sends a call envelope in mode: stored, or direct (Direct, and
// Auto's first try).
func (t *transport) send(ctx context.Context, env *codec.Envelope, mode agentbus.RequestMode) error {
	if mode == agentbus.Durable {
		return t.c.bus.Send(ctx, env)
	}
	return t.c.bus.SendDirect(ctx, env)
}

// next waits for p's next answer.
func (t *transport) next(ctx context.Context, p *pending) (*codec.Envelope, error) {
	select {
	case a, ok := <-p.ch:
		if !ok {
			t.c.mu.Lock()
			err := p.lost
			t.c.mu.Unlock()
			return nil, err
		}
		if a.noResponders {
			if p.call == nil {
				return nil, fmt.Errorf("%w: call to %s", agentbus.ErrNoConsumer, t.agent)
			}
			// Auto: nobody received the call; store it, once.
			call := p.call
			p.call = nil
			if err := t.c.bus.Send(ctx, call); err != nil {
				return nil, fmt.Errorf("a2anats: %s to %s: %w", call.Kind, t.agent, err)
			}
			return t.next(ctx, p)
		}
		noteAnswer(ctx, a.env)
		if a.env.Kind == KindError {
			return nil, remoteError(t.agent, a.env)
		}
		return a.env, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("a2anats: waiting for %s: %w", t.agent, context.Cause(ctx))
	}
}

// answerOf makes a one-answer call and hands its result answer to decode.
func answerOf(ctx context.Context, t *transport, method string, svc a2aclient.ServiceParams, params any, decode func(*codec.Envelope) error) (err error) {
	ctx, span := startCall(ctx, t.c.tracer, trace.SpanKindClient, method, t.agent, params)
	defer func() { endCall(span, err, "") }()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	p, end, err := t.call(ctx, method, svc, params, unaryQueued)
	if err != nil {
		return err
	}
	defer end()
	env, err := t.next(ctx, p)
	if err != nil {
		return err
	}
	if env.Kind != KindResult {
		return fmt.Errorf("%w: %s answered %s with %q", a2a.ErrInvalidAgentResponse, t.agent, method, env.Kind)
	}
	if span != nil && env.Headers.Get(HeaderEvent) != "" {
		if ev, err := answerEvent(env); err == nil {
			noteEvent(span, ev) // a second decode, for sampled calls only
		}
	}
	if err := decode(env); err != nil {
		return fmt.Errorf("%w: %s answered %s: %v", a2a.ErrInvalidAgentResponse, t.agent, method, err)
	}
	return nil
}

// answerEvent decodes the event an answer carries.
func answerEvent(env *codec.Envelope) (a2a.Event, error) {
	raw, err := payloadBytes(env)
	if err != nil {
		return nil, err
	}
	return decodeEvent(env.Headers.Get(HeaderEvent), raw)
}

// typedCall makes a one-answer call whose JSON result is a T.
func typedCall[T any](ctx context.Context, t *transport, method string, svc a2aclient.ServiceParams, params any) (*T, error) {
	res := new(T)
	err := answerOf(ctx, t, method, svc, params, func(env *codec.Envelope) error {
		raw, err := payloadBytes(env)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// streamCall makes a streaming call: its events until the end.
func (t *transport) streamCall(ctx context.Context, method string, svc a2aclient.ServiceParams, params any) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		ctx, span := startCall(ctx, t.c.tracer, trace.SpanKindClient, method, t.agent, params)
		var failed error
		defer func() { endCall(span, failed, "") }()
		yield = failedYield(yield, &failed)
		p, end, err := t.call(ctx, method, svc, params, maxQueued)
		if err != nil {
			yield(nil, err)
			return
		}
		defer end()
		for {
			env, err := t.next(ctx, p)
			if err != nil {
				yield(nil, err)
				return
			}
			switch env.Kind {
			case KindEnd:
				return
			case KindEvent:
			default:
				yield(nil, fmt.Errorf("%w: %s answered %s with %q", a2a.ErrInvalidAgentResponse, t.agent, method, env.Kind))
				return
			}
			ev, err := answerEvent(env)
			if err != nil {
				yield(nil, fmt.Errorf("%w: %s: event: %v", a2a.ErrInvalidAgentResponse, t.agent, err))
				return
			}
			noteEvent(span, ev)
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// failedYield is yield that keeps in *failed the error it yields.
func failedYield(yield func(a2a.Event, error) bool, failed *error) func(a2a.Event, error) bool {
	return func(ev a2a.Event, err error) bool {
		if err != nil {
			*failed = err
		}
		return yield(ev, err)
	}
}

func (t *transport) SendMessage(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	var res a2a.SendMessageResult
	err := answerOf(ctx, t, MethodSendMessage, svc, req, func(env *codec.Envelope) error {
		ev, err := answerEvent(env)
		if err != nil {
			return err
		}
		var ok bool
		if res, ok = ev.(a2a.SendMessageResult); !ok {
			return fmt.Errorf("a %T", ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (t *transport) SendStreamingMessage(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
	return t.streamCall(ctx, MethodSendStreamingMessage, svc, req)
}

func (t *transport) SubscribeToTask(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.SubscribeToTaskRequest) iter.Seq2[a2a.Event, error] {
	return t.streamCall(ctx, MethodSubscribeToTask, svc, req)
}

func (t *transport) GetTask(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.GetTaskRequest) (*a2a.Task, error) {
	return typedCall[a2a.Task](ctx, t, MethodGetTask, svc, req)
}

func (t *transport) ListTasks(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	return typedCall[a2a.ListTasksResponse](ctx, t, MethodListTasks, svc, req)
}

func (t *transport) CancelTask(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.CancelTaskRequest) (*a2a.Task, error) {
	return typedCall[a2a.Task](ctx, t, MethodCancelTask, svc, req)
}

func (t *transport) GetTaskPushConfig(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.GetTaskPushConfigRequest) (*a2a.TaskPushConfig, error) {
	return typedCall[a2a.TaskPushConfig](ctx, t, MethodGetTaskPushConfig, svc, req)
}

func (t *transport) ListTaskPushConfigs(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.ListTaskPushConfigRequest) ([]*a2a.TaskPushConfig, error) {
	res, err := typedCall[[]*a2a.TaskPushConfig](ctx, t, MethodListTaskPushConfigs, svc, req)
	if err != nil {
		return nil, err
	}
	return *res, nil
}

func (t *transport) CreateTaskPushConfig(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.CreateTaskPushConfigRequest) (*a2a.TaskPushConfig, error) {
	return typedCall[a2a.TaskPushConfig](ctx, t, MethodCreateTaskPushConfig, svc, req)
}

func (t *transport) DeleteTaskPushConfig(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.DeleteTaskPushConfigRequest) error {
	_, err := typedCall[struct{}](ctx, t, MethodDeleteTaskPushConfig, svc, req)
	return err
}

func (t *transport) GetExtendedAgentCard(ctx context.Context, svc a2aclient.ServiceParams, req *a2a.GetExtendedAgentCardRequest) (*a2a.AgentCard, error) {
	return typedCall[a2a.AgentCard](ctx, t, MethodGetExtendedAgentCard, svc, req)
}

// Destroy implements a2aclient.Transport; the Client's subscription lives
// as long as its bus.
func (t *transport) Destroy() error { return nil }

// conversation is the ordering key of a call on the bus: the message's
// context ID, else the task the call is about, else the call itself
// (calls that belong to no conversation need no order among them).
func conversation(params any, callID string) string {
	switch p := params.(type) {
	case *a2a.SendMessageRequest:
		if p.Message != nil && p.Message.ContextID != "" {
			return p.Message.ContextID
		}
		if p.Message != nil && p.Message.TaskID != "" {
			return string(p.Message.TaskID)
		}
	case *a2a.GetTaskRequest:
		return string(p.ID)
	case *a2a.CancelTaskRequest:
		return string(p.ID)
	case *a2a.SubscribeToTaskRequest:
		return string(p.ID)
	}
	return callID
}
