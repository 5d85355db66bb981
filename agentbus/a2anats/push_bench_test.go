package a2anats_test

import (
	"context"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// BenchmarkPushOverhead: what serving an agent with push notifications
// costs a call that sets no push config (a2asrv lists the task's configs,
// one KV read, for every event): SendMessage over the bus, one call at a
// time, to the same agent served without push (the anchor) and with it,
// in turn. It reports each one's time per call and the ratio.
func BenchmarkPushOverhead(b *testing.B) {
	for _, tc := range []struct {
		name string
		exec a2asrv.AgentExecutor
	}{
		{"echo", demoagent.Echo{}},     // one event: the message
		{"worker", demoagent.Worker{}}, // four: a task, working, an artifact, completed
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := embeddedtest.RunServer(b)
			sender, err := a2anats.NewPushSender()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = sender.Close(context.Background()) })
			reg := a2anatstest.Host(b, srv, map[string]a2asrv.AgentExecutor{"plain": tc.exec})
			a2anatstest.Host(b, srv, map[string]a2asrv.AgentExecutor{"pushed": tc.exec}, a2anatstest.WithPush(sender))
			bus := a2anatstest.ConnectBus(b, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			clients := map[string]*a2aclient.Client{}
			for _, id := range []string{"plain", "pushed"} {
				card, err := reg.Card(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				if clients[id], err = a2aclient.NewFromCard(ctx, card, a2anats.WithTransport(bus)); err != nil {
					b.Fatal(err)
				}
			}
			took := map[string]time.Duration{}
			call := func(id string) {
				start := time.Now()
				if _, err := clients[id].SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("x"))}); err != nil {
					b.Fatal(err)
				}
				took[id] += time.Since(start)
			}
			call("plain") // warm both up
			call("pushed")
			took = map[string]time.Duration{}
			n := 0
			for b.Loop() {
				call("plain")
				call("pushed")
				n++
			}
			b.ReportMetric(float64(took["plain"].Nanoseconds())/float64(n), "ns/call-plain")
			b.ReportMetric(float64(took["pushed"].Nanoseconds())/float64(n), "ns/call-push")
			b.ReportMetric(float64(took["pushed"])/float64(took["plain"]), "x-plain")
		})
	}
}
