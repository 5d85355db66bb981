package a2anats_test

import (
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2aproject/a2a-go/v2/a2a"
)

// TestPushConfigOutlivesItsMember: two member processes serve plodder with
// push notifications. A durable SendMessage names webhook A in its
// configuration and starts on one member; while it works, a config for
// webhook B is created for its task; then that member is killed (SIGKILL).
// The other member runs the call again in the same task and notifies both
// webhooks of its end: B's config, which only the KV store held, is found;
// A's, which the call carries, replaces the first run's instead of being
// added again. With an in-memory store B hears nothing.
func TestPushConfigOutlivesItsMember(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("kills a member process with SIGKILL")
	}
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, 2*time.Minute)
	hookA, hookB := newWebhook(t, nil).start(t), newWebhook(t, nil).start(t)
	bus, members := plodders(t, ctx, srv)
	tr := durablePlodder(t, bus)
	answers := make(chan callResult, 2)
	go func() {
		res, err := tr.SendMessage(ctx, nil, &a2a.SendMessageRequest{
			Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("plod on")),
			Config:  &a2a.SendMessageConfig{PushConfig: &a2a.PushConfig{URL: hookA.url(), Auth: &a2a.PushAuthInfo{Scheme: "Bearer", Credentials: "a"}}},
		})
		answers <- callResult{res, err}
	}()
	first, survivor, task := startedCall(t, ctx, bus, members, answers)
	if _, err := tr.CreateTaskPushConfig(ctx, nil, &a2a.CreateTaskPushConfigRequest{TaskID: a2a.TaskID(task),
		Config: a2a.PushConfig{ID: "b", URL: hookB.url(), Token: "token-b"}}); err != nil {
		t.Fatal(err)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	r := <-answers
	if r.err != nil {
		t.Fatalf("the call whose member was killed: %v\nsurvivor's output:\n%s", r.err, survivor.output())
	}
	if got, ok := r.res.(*a2a.Task); !ok || string(got.ID) != task || got.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("answer %#v, want task %s completed", r.res, task)
	}

	done := "artifact:done by " + strconv.Itoa(survivor.cmd.Process.Pid)
	for _, h := range []*webhook{hookA, hookB} {
		var got []string
		for len(got) == 0 || got[len(got)-1] != "status:TASK_STATE_COMPLETED" {
			got = h.waitFor(t, ctx, a2a.TaskID(task), len(got)+1)
		}
		if !slices.Contains(got, done) {
			t.Fatalf("webhook %s got %v, want the survivor's %q", h.url(), got, done)
		}
	}
	for _, n := range hookB.notices() {
		if n.token != "token-b" {
			t.Fatalf("webhook B got %+v, want its token", n)
		}
	}
	configs, err := tr.ListTaskPushConfigs(ctx, nil, &a2a.ListTaskPushConfigRequest{TaskID: a2a.TaskID(task)})
	var ids []string
	for _, c := range configs {
		ids = append(ids, c.Config.ID+" "+c.Config.URL)
	}
	if err != nil || len(configs) != 2 {
		t.Fatalf("the task's push configs after the call ran again: %v, %v; want A's and B's", ids, err)
	}
}
