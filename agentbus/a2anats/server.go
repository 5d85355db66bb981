package a2anats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxCalls is how many calls a Server runs at once by default.
const DefaultMaxCalls = 1024

// Server serves the A2A calls that reach one or more agents over the bus
// with an a2asrv.RequestHandler: the same handler a2asrv's JSON-RPC, REST
// and gRPC bindings serve, so an agent built with the A2A SDK is served
// over the bus unchanged.
//
// At most MaxCalls calls run at once; when that many run, the bus's
// handler waits for one to end: backpressure on the agent's consumer, not
// an unbounded queue.
//
// A stored call (agentbus.Durable, or agentbus.Auto when nobody pulled its
// partition) runs in the bus's handler, which returns when the call has
// ended: its answers sent, its task stored as it ended. Only then is the
// call acknowledged, so a member that dies or stops mid-call leaves it to
// be run again by the partition's next owner. That run sees what the
// first left in the TaskStore: a call whose task ended answers with that
// task without running again, and one whose task was still running goes
// on in that task (the message continues it), instead of starting
// another. Stored calls of one conversation run one at a time, in order,
// as the bus delivers them; calls of other conversations run in parallel.
//
// A direct call (agentbus.Direct, and agentbus.Auto's first try) runs in
// a goroutine of its own and the bus's handler returns once it started: a
// long call, a stream, or a cancel aimed at a running task never waits
// behind another call to the same agent, as with HTTP. The Client sends
// the calls that act on existing tasks (get, list, cancel, subscribe, push
// configs) direct first even in Durable mode, so that a cancel does not
// wait behind the task it cancels.
type Server struct {
	bus     *agentbus.Bus
	handler a2asrv.RequestHandler
	log     *slog.Logger
	metrics *Metrics      // nil: not counted
	slots   chan struct{} // one per running call
	tracer  *tracing.Tracer

	// Calls run on worker goroutines that wait a while for the next call
	// when done, so that a busy agent does not start a goroutine (and grow
	// its stack) per call.
	work    chan directCall // unbuffered: taken by an idle worker
	calls   sync.WaitGroup  // running calls
	workers sync.WaitGroup

	ctx    context.Context // ended by Close: the calls' parent
	cancel context.CancelFunc
	once   sync.Once

	// tasks is the TaskStore bucket, opened by the first stored call run
	// again.
	tasksMu sync.Mutex
	tasks   jetstream.KeyValue
}

// workerIdle is how long a worker waits for another call before it ends.
const workerIdle = 10 * time.Second

// directCall is a direct call handed to a worker, and the span context of
// the bus's handler call that received it (its trace's parent).
type directCall struct {
	env    *codec.Envelope
	parent trace.SpanContext
}

// ServerOption configures a Server.
type ServerOption func(*Server) error

// ServerMaxCalls bounds the calls running at once (default DefaultMaxCalls).
func ServerMaxCalls(n int) ServerOption {
	return func(s *Server) error {
		if n < 1 {
			return fmt.Errorf("a2anats: max calls %d: want at least 1", n)
		}
		s.slots = make(chan struct{}, n)
		return nil
	}
}

// ServerLogger sets the logger of calls that fail in ways no requester
// can be told of (default slog.Default()).
func ServerLogger(l *slog.Logger) ServerOption {
	return func(s *Server) error {
		if l == nil {
			return errors.New("a2anats: nil logger")
		}
		s.log = l
		return nil
	}
}

// NewServer returns a Server of h's calls, answering over bus.
func NewServer(bus *agentbus.Bus, h a2asrv.RequestHandler, opts ...ServerOption) (*Server, error) {
	if bus == nil || h == nil {
		return nil, errors.New("a2anats: NewServer needs a bus and a request handler")
	}
	s := &Server{bus: bus, handler: h, log: slog.Default(), slots: make(chan struct{}, DefaultMaxCalls), work: make(chan directCall),
		tracer: tracing.New(bus.TracerProvider())}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Handle serves agentID's A2A calls on bus with h: NewServer and
// bus.Handle in one call. Close the Server after the bus's Serve ends.
func Handle(bus *agentbus.Bus, agentID string, h a2asrv.RequestHandler, opts ...ServerOption) (*Server, error) {
	s, err := NewServer(bus, h, opts...)
	if err != nil {
		return nil, err
	}
	if err := bus.Handle(agentID, s.Handle); err != nil {
		return nil, err
	}
	return s, nil
}

// IsCall reports whether env is a call of this binding (its Kind starts
// with KindPrefix), so that an agent's bus handler can serve A2A calls and
// other envelopes side by side.
func IsCall(env *codec.Envelope) bool { return strings.HasPrefix(env.Kind, KindPrefix) }

// Handle is the agentbus.Handler of the Server. It runs a stored call to
// its end, and starts a direct call and returns (see Server). An envelope
// that is not a call is answered with an invalid request error (or
// dropped, if it has nobody to answer) and acknowledged: retrying it would
// not make it one.
func (s *Server) Handle(ctx context.Context, env *codec.Envelope) error {
	if env.Expired(time.Now()) {
		return nil // its requester has given up on it
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return fmt.Errorf("a2anats: server closed: call %s to %s not started", env.ID, env.To)
	}
	s.calls.Add(1)
	d, _ := agentbus.DeliveryOf(ctx)
	if !d.Direct {
		defer func() {
			<-s.slots
			s.calls.Done()
		}()
		return s.serveStored(ctx, env, d.Delivered > 1 || env.Attempt > 0)
	}
	// env is the call's to keep (agentbus.Handler): no copy.
	call := directCall{env, trace.SpanContextFromContext(ctx)}
	select {
	case s.work <- call:
	default:
		s.workers.Add(1)
		go s.worker(call)
	}
	return nil
}

// serveStored runs a stored call under the bus's handler context ctx as
// well as the Server's. When ctx ends first (the member stops, is fenced
// or the call passed its handler timeout), the call is not answered with
// that: its error is returned instead, so that the call is not
// acknowledged and its next delivery answers it. rerun says an earlier
// delivery or attempt may have run it.
func (s *Server) serveStored(ctx context.Context, env *codec.Envelope, rerun bool) error {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.ctx, func() { cancel(errServerClosed) })
	defer stop()
	a := &answerer{s: s, req: env, code: "ok", interrupt: cctx, replyCtx: context.WithoutCancel(ctx)}
	s.serve(cctx, a, rerun)
	if a.interrupted {
		return fmt.Errorf("a2anats: call %s to %s interrupted: %w", env.ID, env.To, context.Cause(cctx))
	}
	return nil
}

// errServerClosed is the cause of a stored call's context canceled by
// Close.
var errServerClosed = errors.New("a2anats: server closed")

// worker serves call, then the calls it is handed until it has waited
// workerIdle for one or the Server closes.
func (s *Server) worker(call directCall) {
	defer s.workers.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		ctx := s.ctx
		if call.parent.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, call.parent)
		}
		s.serve(ctx, &answerer{s: s, req: call.env, code: "ok"}, false)
		<-s.slots
		s.calls.Done()
		idle.Reset(workerIdle)
		select {
		case call = <-s.work:
		case <-idle.C:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// Close stops the Server: no call starts any more, the running ones may
// end until ctx ends, and are then canceled. Close is idempotent.
func (s *Server) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.calls.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("a2anats: calls still running at close: %w", ctx.Err())
	}
	s.once.Do(s.cancel)
	<-done
	s.workers.Wait()
	return err
}

// answerer sends the numbered answers to one call.
type answerer struct {
	s         *Server
	req       *codec.Envelope
	seq       int
	eventName string // HeaderEvent of the answer being sent
	code      string // the call's outcome: "ok" or its JSON-RPC error code
	// interrupt, for a stored call, ends when the call is to be given up
	// for its next delivery: a failure then is not answered, and
	// interrupted is set.
	interrupt   context.Context
	interrupted bool
	// replyCtx carries the call's delivery to Bus.Reply (a stored call's
	// first answer is confirmed); it never ends. nil: none.
	replyCtx context.Context
	// span is the call's SERVER span, nil when tracing is off; the
	// answers carry its context.
	span trace.Span
}

// traced returns ctx with the call's span, if it has one.
func (a *answerer) traced(ctx context.Context) context.Context {
	if a.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, a.span)
}

func (a *answerer) send(kind string, payload []byte, err error) {
	if a.req.ReplyTo == "" {
		if err != nil {
			a.s.log.WarnContext(a.traced(context.Background()), "A2A call without a requester failed", "call", a.req.ID, "agent", a.req.To, "kind", a.req.Kind, "err", err)
		}
		return
	}
	a.seq++
	resp := &codec.Envelope{Kind: kind}
	resp.Headers.Set(HeaderSeq, strconv.Itoa(a.seq))
	if err != nil {
		a.code = strconv.Itoa(ErrorCode(err))
		resp.Headers.Set(HeaderCode, a.code)
		resp.Headers.Set(HeaderError, err.Error())
	}
	if a.eventName != "" {
		resp.Headers.Set(HeaderEvent, a.eventName)
	}
	if payload != nil {
		resp.Payload = payload
	}
	// A reply is a core NATS publish: it fails only on a closed
	// connection, and then nobody can be told.
	rctx := a.replyCtx
	if rctx == nil {
		rctx = context.Background()
	}
	rctx = a.traced(rctx)
	if rerr := a.s.bus.Reply(rctx, a.req, resp); rerr != nil {
		a.s.log.WarnContext(rctx, "A2A answer not sent", "call", a.req.ID, "agent", a.req.To, "err", rerr)
	}
}

func (a *answerer) fail(err error) {
	if a.interrupt != nil && a.interrupt.Err() != nil {
		a.interrupted, a.code = true, "interrupted"
		return
	}
	if a.req.ReplyTo == "" {
		a.code = strconv.Itoa(ErrorCode(err))
	}
	a.send(KindError, nil, err)
}

// result answers with v as JSON.
func (a *answerer) result(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.fail(fmt.Errorf("%w: encode result: %v", a2a.ErrInternalError, err))
		return
	}
	a.send(KindResult, b, nil)
}

// event answers with ev as an answer of kind, or fails the call.
func (a *answerer) event(kind string, ev a2a.Event) bool {
	name, err := eventKind(ev)
	var b []byte
	if err == nil {
		b, err = json.Marshal(ev)
	}
	if err != nil {
		a.fail(fmt.Errorf("%w: encode event: %v", a2a.ErrInternalError, err))
		return false
	}
	noteEvent(a.span, ev)
	a.eventName = name
	a.send(kind, b, nil)
	a.eventName = ""
	return true
}

// stream answers with every event of seq and an end, or an error.
func (a *answerer) stream(seq iter.Seq2[a2a.Event, error]) {
	for ev, err := range seq {
		if err != nil {
			a.fail(err)
			return
		}
		if !a.event(KindEvent, ev) {
			return
		}
	}
	a.send(KindEnd, nil, nil)
}

// serve runs a's call under ctx and answers it. rerun says an earlier
// run of a stored call may have left its task in the store.
func (s *Server) serve(ctx context.Context, a *answerer, rerun bool) {
	env := a.req
	done := s.metrics.begin(env.To, strings.TrimPrefix(env.Kind, KindPrefix))
	defer func() { done(a.code) }()
	ctx, a.span = startCall(ctx, s.tracer, trace.SpanKindServer, strings.TrimPrefix(env.Kind, KindPrefix), env.To, nil)
	defer func() { endCall(a.span, nil, a.code) }()
	if env.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(env.Deadline))
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(ctx, "A2A call panicked", "call", env.ID, "agent", env.To, "kind", env.Kind, "panic", r)
			a.fail(fmt.Errorf("%w: the agent's handler panicked", a2a.ErrInternalError))
		}
	}()
	method, params, err := parseCall(env)
	if err != nil {
		a.fail(err)
		return
	}
	ctx, _ = a2asrv.NewCallContext(ctx, a2asrv.NewServiceParams(service(env.Headers)))
	if a.interrupt != nil {
		ctx = withStoredCall(ctx, env.ID)
	}
	h := s.handler
	switch method {
	case MethodSendMessage:
		var req a2a.SendMessageRequest
		if decodeParams(a, params, &req) {
			if rerun && s.resume(ctx, a, &req) {
				return
			}
			res, err := h.SendMessage(ctx, &req)
			if err != nil {
				a.fail(err)
				return
			}
			a.event(KindResult, res)
		}
	case MethodGetTask:
		unary(a, params, func(req *a2a.GetTaskRequest) (any, error) { return h.GetTask(ctx, req) })
	case MethodListTasks:
		unary(a, params, func(req *a2a.ListTasksRequest) (any, error) { return h.ListTasks(ctx, req) })
	case MethodCancelTask:
		unary(a, params, func(req *a2a.CancelTaskRequest) (any, error) { return s.cancelTask(ctx, req) })
	case MethodGetTaskPushConfig:
		unary(a, params, func(req *a2a.GetTaskPushConfigRequest) (any, error) { return h.GetTaskPushConfig(ctx, req) })
	case MethodCreateTaskPushConfig:
		unary(a, params, func(req *a2a.CreateTaskPushConfigRequest) (any, error) { return h.CreateTaskPushConfig(ctx, req) })
	case MethodListTaskPushConfigs:
		unary(a, params, func(req *a2a.ListTaskPushConfigRequest) (any, error) { return h.ListTaskPushConfigs(ctx, req) })
	case MethodDeleteTaskPushConfig:
		unary(a, params, func(req *a2a.DeleteTaskPushConfigRequest) (any, error) {
			return struct{}{}, h.DeleteTaskPushConfig(ctx, req)
		})
	case MethodGetExtendedAgentCard:
		unary(a, params, func(req *a2a.GetExtendedAgentCardRequest) (any, error) { return h.GetExtendedAgentCard(ctx, req) })
	case MethodSendStreamingMessage:
		var req a2a.SendMessageRequest
		if decodeParams(a, params, &req) {
			if rerun && s.resume(ctx, a, &req) {
				return
			}
			a.stream(h.SendStreamingMessage(ctx, &req))
		}
	case MethodSubscribeToTask:
		var req a2a.SubscribeToTaskRequest
		if decodeParams(a, params, &req) {
			a.stream(h.SubscribeToTask(ctx, &req))
		}
	default:
		a.fail(fmt.Errorf("%w: %q", a2a.ErrMethodNotFound, method))
	}
}

// cancelTries bounds how often cancelTask asks again.
const cancelTries = 8

// cancelTask cancels a task, and asks again while a cancel of a task that
// is not in a terminal state fails. a2a-go's task manager (v2.2.0) sends a
// cancel that meets a running execution of the task into that execution;
// when the execution ends without reaching a terminal state (a task that
// has just asked for input: its answer is out while the execution is
// still ending), the cancel fails with TaskNotCancelable, or with "queue
// is closed" when the execution's queue closed under it. Asked again once
// that execution has ended, the cancel runs on its own and succeeds. A
// task in a terminal state, or one the store cannot find, is refused at
// once, as before.
func (s *Server) cancelTask(ctx context.Context, req *a2a.CancelTaskRequest) (*a2a.Task, error) {
	wait := 2 * time.Millisecond
	for try := 1; ; try++ {
		task, err := s.handler.CancelTask(ctx, req)
		if err == nil || errors.Is(err, a2a.ErrTaskNotFound) || try == cancelTries {
			return task, err
		}
		cur, gerr := s.handler.GetTask(ctx, &a2a.GetTaskRequest{Tenant: req.Tenant, ID: req.ID})
		if gerr != nil || cur == nil || cur.Status.State.Terminal() {
			return task, err
		}
		// The execution the cancel met ends as soon as its last event is
		// stored; a short back-off lets it.
		select {
		case <-ctx.Done():
			return task, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// resume prepares a stored call run again (rerun) from what its earlier
// run left in the TaskStore bucket: when that run created a task that has
// ended, resume answers with it and reports true; when the task is still
// open, the message goes on in it (the SDK finds the message in the task's
// history and does not add it twice). A message that names its task, a
// call that made none, and an agent whose tasks are not in a TaskStore
// run as they are.
func (s *Server) resume(ctx context.Context, a *answerer, req *a2a.SendMessageRequest) bool {
	if req.Message == nil || req.Message.TaskID != "" {
		return false
	}
	task, err := s.earlierTask(ctx, a.req)
	if err != nil {
		s.log.WarnContext(ctx, "A2A call run again: its earlier task could not be read; it runs as new", "call", a.req.ID, "agent", a.req.To, "err", err)
		return false
	}
	if task == nil {
		return false
	}
	if task.Status.State.Terminal() {
		if a.req.Kind == KindPrefix+MethodSendStreamingMessage {
			if a.event(KindEvent, task) {
				a.send(KindEnd, nil, nil)
			}
		} else {
			a.event(KindResult, task)
		}
		return true
	}
	req.Message.TaskID = task.ID
	if req.Message.ContextID == "" {
		req.Message.ContextID = task.ContextID
	}
	return false
}

// earlierTask returns the task an earlier run of the stored call env
// created, or nil.
func (s *Server) earlierTask(ctx context.Context, env *codec.Envelope) (*a2a.Task, error) {
	s.tasksMu.Lock()
	kv := s.tasks
	if kv == nil {
		js, err := jetstream.New(s.bus.Conn())
		if err == nil {
			kv, err = js.KeyValue(ctx, TasksBucket)
		}
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			err = nil // no TaskStore: nothing to resume
		}
		if err != nil {
			s.tasksMu.Unlock()
			return nil, err
		}
		s.tasks = kv
	}
	s.tasksMu.Unlock()
	if kv == nil {
		return nil, nil
	}
	return callTask(ctx, kv, env.To, env.ID)
}

// parseCall returns the method and params of a call envelope, or the A2A
// error that says why env is not one.
func parseCall(env *codec.Envelope) (method string, params json.RawMessage, err error) {
	if !IsCall(env) {
		return "", nil, fmt.Errorf("%w: envelope kind %q is not an A2A call (want %s<method>)", a2a.ErrInvalidRequest, env.Kind, KindPrefix)
	}
	raw, err := payloadBytes(env)
	if err != nil {
		return "", nil, err
	}
	return env.Kind[len(KindPrefix):], raw, nil
}

// decodeParams decodes a call's params into req, or answers why not.
func decodeParams(a *answerer, params json.RawMessage, req any) bool {
	if len(params) == 0 {
		a.fail(fmt.Errorf("%w: no params", a2a.ErrInvalidParams))
		return false
	}
	if err := json.Unmarshal(params, req); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			a.fail(fmt.Errorf("%w: %v", a2a.ErrParseError, err))
		} else {
			a.fail(fmt.Errorf("%w: %v", a2a.ErrInvalidParams, err))
		}
		return false
	}
	noteParams(a.span, req)
	return true
}

// unary runs a one-answer method.
func unary[Req any](a *answerer, params json.RawMessage, fn func(*Req) (any, error)) {
	req := new(Req)
	if !decodeParams(a, params, req) {
		return
	}
	res, err := fn(req)
	if err != nil {
		a.fail(err)
		return
	}
	a.result(res)
}
