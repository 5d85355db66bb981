package a2anats_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/prometheus/client_golang/prometheus"
)

// webhook is a real local HTTP server that records the push notifications
// it accepts. answer, when set, decides each request's fate before it is
// recorded: false means it was not accepted (answer wrote the response).
type webhook struct {
	srv     *httptest.Server
	answer  func(w http.ResponseWriter, r *http.Request) bool
	mu      sync.Mutex
	got     []notice
	arrived chan struct{} // a notice was recorded (size one: a wake-up)
	hung    chan struct{} // a request is being held (size one: a wake-up)
}

// notice is a push notification as a webhook got it.
type notice struct {
	auth, token string
	event       string // "task:<state>", "status:<state>", "artifact:<text>" or "message"
	task        a2a.TaskID
}

func newWebhook(t *testing.T, answer func(w http.ResponseWriter, r *http.Request) bool) *webhook {
	t.Helper()
	h := &webhook{answer: answer, arrived: make(chan struct{}, 1), hung: make(chan struct{}, 1)}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	return h
}

func (h *webhook) start(t *testing.T) *webhook {
	t.Helper()
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *webhook) url() string { return h.srv.URL + "/hook" }

func (h *webhook) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if h.answer != nil && !h.answer(w, r) {
		return
	}
	var sr a2a.StreamResponse
	if err := json.Unmarshal(body, &sr); err != nil || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "not a StreamResponse", http.StatusBadRequest)
		return
	}
	n := notice{auth: r.Header.Get("Authorization"), token: r.Header.Get("A2A-Notification-Token")}
	switch e := sr.Event.(type) {
	case *a2a.Task:
		n.event, n.task = "task:"+string(e.Status.State), e.ID
	case *a2a.TaskStatusUpdateEvent:
		n.event, n.task = "status:"+string(e.Status.State), e.TaskID
	case *a2a.TaskArtifactUpdateEvent:
		n.event, n.task = "artifact:"+demoagent.Text(&a2a.Message{Parts: e.Artifact.Parts}), e.TaskID
	case *a2a.Message:
		n.event, n.task = "message", e.TaskID
	}
	h.mu.Lock()
	h.got = append(h.got, n)
	h.mu.Unlock()
	select {
	case h.arrived <- struct{}{}:
	default:
	}
}

// hold answers a request only when release is closed or the request ends:
// a webhook that hangs.
func (h *webhook) hold(release <-chan struct{}) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case h.hung <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return true
		case <-r.Context().Done():
			return false
		}
	}
}

func (h *webhook) notices() []notice {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// events returns the events of task the webhook got, in order.
func (h *webhook) events(task a2a.TaskID) []string {
	var ev []string
	for _, n := range h.notices() {
		if n.task == task {
			ev = append(ev, n.event)
		}
	}
	return ev
}

// waitFor waits until the webhook got n events of task, and returns them.
func (h *webhook) waitFor(t *testing.T, ctx context.Context, task a2a.TaskID, n int) []string {
	t.Helper()
	for {
		if ev := h.events(task); len(ev) >= n {
			return ev
		}
		select {
		case <-h.arrived:
		case <-ctx.Done():
			t.Fatalf("the webhook %s got %v for task %s, want %d events: %v", h.url(), h.events(task), task, n, ctx.Err())
		}
	}
}

// workerEvents are the notifications of a worker task whose message was
// text, in order.
func workerEvents(text string) []string {
	return []string{"task:TASK_STATE_SUBMITTED", "status:TASK_STATE_WORKING", "artifact:done: " + text, "status:TASK_STATE_COMPLETED"}
}

// newPushSender starts a PushSender with its metrics on a registry of its
// own, closed when the test ends.
func newPushSender(t *testing.T, opts ...a2anats.PushSenderOption) (*a2anats.PushSender, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := a2anats.NewPushSender(append([]a2anats.PushSenderOption{
		a2anats.PushRegisterer(reg), a2anats.PushLogger(embeddedtest.Logger(t)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, reg
}

// metric returns the sum of a metric's series whose labels include
// labels.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// pushMessage is a message to agent's tasks with a push config to url.
func pushMessage(text, url string) *a2a.SendMessageRequest {
	req := a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}
	req.Config = &a2a.SendMessageConfig{PushConfig: &a2a.PushConfig{
		URL: url, Token: "notify-" + text, Auth: &a2a.PushAuthInfo{Scheme: "bearer", Credentials: "secret-" + text},
	}}
	return &req
}

// TestPushDeliveredInOrder: an agent on the bus with push notifications
// posts every event of a task, in order, to the webhook its message named,
// with the config's credentials (Authorization: Bearer ...) and token
// (A2A-Notification-Token); a config created for a task waiting for input
// gets the events of the message that continues it; the configs are read
// back over the bus.
func TestPushDeliveredInOrder(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	sender, reg := newPushSender(t)
	agentReg := a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{
		"worker": demoagent.Worker{Delay: 50 * time.Millisecond}, "tck": demoagent.TCK{},
	}, a2anatstest.WithPush(sender))
	bus := a2anatstest.ConnectBus(t, srv)
	hook := newWebhook(t, nil).start(t)

	c := client(t, bus, agentReg, "worker")
	var tasks []a2a.TaskID
	for _, text := range []string{"one", "two", "three"} {
		res, err := c.SendMessage(ctx, pushMessage(text, hook.url()))
		if err != nil {
			t.Fatal(err)
		}
		task := res.(*a2a.Task)
		if task.Status.State != a2a.TaskStateCompleted {
			t.Fatalf("task %s %s", task.ID, task.Status.State)
		}
		tasks = append(tasks, task.ID)
	}
	for i, text := range []string{"one", "two", "three"} {
		got := hook.waitFor(t, ctx, tasks[i], 4)
		if !slices.Equal(got, workerEvents(text)) {
			t.Fatalf("task %s: the webhook got %v, want %v", text, got, workerEvents(text))
		}
	}
	for _, n := range hook.notices() {
		text := ""
		for i, id := range tasks {
			if n.task == id {
				text = []string{"one", "two", "three"}[i]
			}
		}
		if n.auth != "Bearer secret-"+text || n.token != "notify-"+text {
			t.Fatalf("notice %+v: want Authorization \"Bearer secret-%s\" and token \"notify-%s\"", n, text, text)
		}
	}
	configs, err := c.ListTaskPushConfigs(ctx, &a2a.ListTaskPushConfigRequest{TaskID: tasks[0]})
	if err != nil || len(configs) != 1 || configs[0].Config.URL != hook.url() || configs[0].Config.Auth.Credentials != "secret-one" {
		t.Fatalf("ListTaskPushConfigs over the bus: %+v, %v", configs, err)
	}

	// The kit's flow: a task waits for input, a config is created for it,
	// and the message that continues it is notified.
	tck := client(t, bus, agentReg, "tck")
	msg := a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hi"))
	msg.ID = "tck-input-required-1"
	res, err := tck.SendMessage(ctx, &a2a.SendMessageRequest{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	task := res.(*a2a.Task)
	if _, err := tck.CreateTaskPushConfig(ctx, &a2a.CreateTaskPushConfigRequest{TaskID: task.ID,
		Config: a2a.PushConfig{ID: "kit", URL: hook.url(), Auth: &a2a.PushAuthInfo{Scheme: "Bearer", Credentials: "kit"}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := tck.GetTaskPushConfig(ctx, &a2a.GetTaskPushConfigRequest{TaskID: task.ID, ID: "kit"}); err != nil || got.Config.URL != hook.url() {
		t.Fatalf("GetTaskPushConfig: %+v, %v", got, err)
	}
	next := a2a.NewMessageForTask(a2a.MessageRoleUser, task, a2a.NewTextPart("go on"))
	next.ID = "tck-complete-task-1"
	// The SDK answers input-required before its execution of the task
	// has ended; a message sent meanwhile is refused as a second
	// execution (a2a-go internal/taskexec), and is sent again.
	for {
		_, err := tck.SendMessage(ctx, &a2a.SendMessageRequest{Message: next})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "task execution is already in progress") || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := hook.waitFor(t, ctx, task.ID, 1); got[len(got)-1] != "status:TASK_STATE_COMPLETED" {
		t.Fatalf("the continued task's notices %v, want its completion", got)
	}
	if err := tck.DeleteTaskPushConfig(ctx, &a2a.DeleteTaskPushConfigRequest{TaskID: task.ID, ID: "kit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tck.GetTaskPushConfig(ctx, &a2a.GetTaskPushConfigRequest{TaskID: task.ID, ID: "kit"}); err == nil {
		t.Fatal("GetTaskPushConfig of a deleted config succeeded")
	}
	// Counted once the webhook's answer is in, after it recorded them.
	for metric(t, reg, "a2abus_push_delivered_total", "agent", "worker") < 12 {
		select {
		case <-ctx.Done():
			t.Fatalf("a2abus_push_delivered_total{agent=worker} = %v, want 12", metric(t, reg, "a2abus_push_delivered_total", "agent", "worker"))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := metric(t, reg, "a2abus_push_delivered_total", "agent", "worker"); n != 12 {
		t.Fatalf("a2abus_push_delivered_total{agent=worker} = %v, want 12", n)
	}
}

// TestPushBadConfigRefused: a message whose push config names no usable
// webhook is refused with invalid params, saying why, before any task
// starts.
func TestPushBadConfigRefused(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	sender, _ := newPushSender(t)
	reg := a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"worker": demoagent.Worker{}}, a2anatstest.WithPush(sender))
	c := client(t, a2anatstest.ConnectBus(t, srv), reg, "worker")
	_, err := c.SendMessage(ctx, pushMessage("x", "hooks.example/no-scheme"))
	if !errors.Is(err, a2a.ErrInvalidParams) || !strings.Contains(err.Error(), "want an absolute http or https URL") {
		t.Fatalf("SendMessage with a bad webhook URL: %v, want invalid params saying what is wrong", err)
	}
	_, err = c.CreateTaskPushConfig(ctx, &a2a.CreateTaskPushConfigRequest{TaskID: a2a.NewTaskID(), Config: a2a.PushConfig{URL: "ftp://hooks.example/"}})
	if !errors.Is(err, a2a.ErrInvalidParams) || !strings.Contains(err.Error(), "want an absolute http or https URL") {
		t.Fatalf("CreateTaskPushConfig with a bad URL: %v, want invalid params saying what is wrong", err)
	}
}

// TestPushRetriedUntilWebhookUp: the webhook is down (its port refuses
// connections) when the task runs, then answers 503 twice, then comes up:
// the task completed without waiting for it, and every notification
// arrives once, in order, after the retries.
func TestPushRetriedUntilWebhookUp(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	// Attempts enough for the time the test takes to bring the webhook
	// up, however loaded the machine.
	sender, reg := newPushSender(t, a2anats.PushBackoff(20*time.Millisecond, 200*time.Millisecond), a2anats.PushMaxAttempts(100))
	agentReg := a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"worker": demoagent.Worker{Delay: 50 * time.Millisecond}}, a2anatstest.WithPush(sender))

	// An address nobody listens on, until the webhook starts there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	unavailable := 2
	var mu sync.Mutex
	hook := newWebhook(t, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if unavailable > 0 {
			unavailable--
			w.Header().Set("Retry-After", "0")
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return false
		}
		return true
	})

	c := client(t, a2anatstest.ConnectBus(t, srv), agentReg, "worker")
	res, err := c.SendMessage(ctx, pushMessage("late", "http://"+addr+"/hook"))
	if err != nil {
		t.Fatal(err)
	}
	task := res.(*a2a.Task)
	if task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("task %s, want completed while its webhook is down", task.Status.State)
	}
	for metric(t, reg, "a2abus_push_failed_attempts_total", "agent", "worker") < 2 {
		select {
		case <-ctx.Done():
			t.Fatal("no failed attempts counted while the webhook is down")
		case <-time.After(10 * time.Millisecond):
		}
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	hook.srv.Listener = l
	hook.start(t)
	if got := hook.waitFor(t, ctx, task.ID, 4); !slices.Equal(got, workerEvents("late")) {
		t.Fatalf("the webhook got %v, want %v", got, workerEvents("late"))
	}
	if n := metric(t, reg, "a2abus_push_dropped_total"); n != 0 {
		t.Fatalf("%v notifications dropped, want none", n)
	}
}

// TestPushHungWebhookBlocksNothing: a webhook that takes requests and
// never answers holds neither its tasks (their SendMessage returns
// completed) nor another webhook's notifications, which arrive while more
// tasks' notifications hang than the sender has workers. The SDK's
// push.HTTPPushSender, which posts inline, fails this test.
func TestPushHungWebhookBlocksNothing(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	const workers, hung = 4, 6
	// No timeout: a hung webhook holds its post until released.
	sender, _ := newPushSender(t, a2anats.PushWorkers(workers), a2anats.PushHostLimit(2), a2anats.PushHTTPClient(&http.Client{}))
	reg := a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"worker": demoagent.Worker{Delay: 20 * time.Millisecond}}, a2anatstest.WithPush(sender))
	release := make(chan struct{})
	stuck := newWebhook(t, nil)
	stuck.answer = stuck.hold(release)
	stuck.start(t)
	defer close(release) // before the servers close: they wait for their handlers
	fine := newWebhook(t, nil).start(t)

	c := client(t, a2anatstest.ConnectBus(t, srv), reg, "worker")
	for i := range hung {
		res, err := c.SendMessage(ctx, pushMessage("stuck", stuck.url()))
		if err != nil {
			t.Fatalf("task %d of the hung webhook: %v", i, err)
		}
		if task := res.(*a2a.Task); task.Status.State != a2a.TaskStateCompleted {
			t.Fatalf("task %d of the hung webhook: %s", i, task.Status.State)
		}
	}
	select {
	case <-stuck.hung:
	case <-ctx.Done():
		t.Fatal("the hung webhook got no request")
	}
	res, err := c.SendMessage(ctx, pushMessage("fine", fine.url()))
	if err != nil {
		t.Fatal(err)
	}
	task := res.(*a2a.Task)
	if got := fine.waitFor(t, ctx, task.ID, 4); !slices.Equal(got, workerEvents("fine")) {
		t.Fatalf("the other webhook got %v, want %v", got, workerEvents("fine"))
	}
	if n := len(stuck.notices()); n != 0 {
		t.Fatalf("the hung webhook recorded %d notices before it was released", n)
	}
}

// TestPushQueueBounded: a task whose webhook hangs keeps at most
// PushMaxQueued notifications for it, dropping the oldest waiting one so
// that its completion gets through; a sender that holds its total drops
// new ones. Each drop is counted, by reason, and logged.
func TestPushQueueBounded(t *testing.T) {
	for _, tc := range []struct {
		name          string
		perTask, all  int
		reason        string
		dropped       float64
		wantDelivered func(events []string) bool
	}{
		// The head is posted (or, if the worker came late, dropped
		// too); the newest two remain: the completion comes last.
		{"task queue", 2, 100, "task_queue_full", 2, func(ev []string) bool {
			return len(ev) == 2 && ev[1] == "status:TASK_STATE_COMPLETED"
		}},
		// The first two are held; the sender then holds its total and
		// drops the rest.
		{"sender queue", 64, 2, "queue_full", 2, func(ev []string) bool {
			return slices.Equal(ev, []string{"task:TASK_STATE_SUBMITTED", "status:TASK_STATE_WORKING"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := embeddedtest.RunServer(t)
			ctx := testCtx(t, time.Minute)
			var logs embeddedtest.Buffer
			sender, metrics := newPushSender(t, a2anats.PushMaxQueued(tc.perTask, tc.all), a2anats.PushHTTPClient(&http.Client{}),
				a2anats.PushLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			reg := a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"worker": demoagent.Worker{}}, a2anatstest.WithPush(sender))
			release := make(chan struct{})
			hook := newWebhook(t, nil)
			hook.answer = hook.hold(release)
			hook.start(t)
			c := client(t, a2anatstest.ConnectBus(t, srv), reg, "worker")
			res, err := c.SendMessage(ctx, pushMessage("many", hook.url()))
			if err != nil {
				t.Fatal(err)
			}
			task := res.(*a2a.Task)
			// SendMessage returned once the completion was processed,
			// and so queued or dropped.
			if n := metric(t, metrics, "a2abus_push_dropped_total", "reason", tc.reason); n != tc.dropped {
				t.Fatalf("a2abus_push_dropped_total{reason=%s} = %v, want %v", tc.reason, n, tc.dropped)
			}
			if !strings.Contains(logs.String(), "push notification dropped") {
				t.Fatalf("no drop logged:\n%s", logs.String())
			}
			close(release)
			for metric(t, metrics, "a2abus_push_queued") != 0 {
				select {
				case <-ctx.Done():
					t.Fatal("notifications still queued after the webhook was released")
				case <-time.After(10 * time.Millisecond):
				}
			}
			if got := hook.events(task.ID); !tc.wantDelivered(got) {
				t.Fatalf("the webhook got %v", got)
			}
		})
	}
}
