package agentd

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sidecarCardTimeout bounds the fetch of a sidecar agent's card at start.
const sidecarCardTimeout = 5 * time.Second

// startHosted hosts the agents this agentd serves on nc, with its consumer
// pool: the demo agents and the conformance agent (--demo) and the sidecar
// HTTP agents (--sidecars).
// The demo agents are A2A SDK agents (echo replies with the text it got,
// worker runs a task that completes after --demo-delay), served over the
// bus with the task store and push configs in KV and push notifications
// sent from a queue (a2anats.PushSender); they also answer plain envelopes with a
// text message, as `agentd send` and the benchmarks use. It returns the
// function that stops them: the consumers stop, their handlers may run on
// for --drain-timeout and are then canceled (the stored calls among them are
// left to the pool's next member), the consumers hand their partitions
// over; then the A2A servers close: the direct calls they still run may
// end within callGrace, then they are canceled, and their tasks stay in KV
// as they last were; the push notifications still queued get pushGrace
// while the bus closes. It waits until its ctx ends.
func (d *Daemon) startHosted(ctx context.Context, nc *nats.Conn) (stop func(context.Context), err error) {
	sidecars, err := gateway.ParseSidecars(d.cfg.Sidecars)
	if err != nil {
		return nil, err
	}
	bus, err := agentbus.Connect(ctx, d.busOptions(nc, agentbus.WithRegisterer(d.reg))...)
	if err != nil {
		return nil, err
	}
	d.hosted.Store(bus)
	var (
		servers []*a2anats.Server
		pushes  *a2anats.PushSender // the demo agents' push notifications
	)
	stopCalls := func(ctx context.Context) {
		gctx, cancel := context.WithTimeout(ctx, callGrace)
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Close(gctx); err != nil {
					d.log.Warn("A2A calls canceled at shutdown", "err", err)
				}
			}()
		}
		wg.Wait()
	}
	closeAll := func(ctx context.Context) {
		stopCalls(ctx)
		// The notifications the calls left get pushGrace, beside the
		// bus's close.
		pushed := make(chan struct{})
		go func() {
			defer close(pushed)
			if pushes == nil {
				return
			}
			pctx, pcancel := context.WithTimeout(ctx, pushGrace)
			defer pcancel()
			if err := pushes.Close(pctx); err != nil {
				d.log.Warn("push notifications not delivered at shutdown", "err", err)
			}
		}()
		cctx, ccancel := context.WithTimeout(ctx, drainTimeout)
		defer ccancel()
		_ = bus.Close(cctx)
		<-pushed
	}
	defer func() {
		if err != nil {
			closeAll(context.Background())
		}
	}()
	reg, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		return nil, err
	}
	metrics, err := a2anats.NewMetrics(d.reg)
	if err != nil {
		return nil, err
	}
	var hosted []string
	if d.cfg.Demo {
		pushes, err = a2anats.NewPushSender(a2anats.PushLogger(d.log.With("component", "push")), a2anats.PushRegisterer(d.reg))
		if err != nil {
			return nil, err
		}
		for _, a := range []struct {
			id   string
			card *a2a.AgentCard
			exec a2asrv.AgentExecutor
		}{
			{"echo", demoagent.Card("echo", "Replies with the text it got."), demoagent.Echo{}},
			{"worker", demoagent.Card("worker", fmt.Sprintf("Runs a task that completes after %v with the artifact \"done: <text>\".", d.cfg.DemoDelay)), demoagent.Worker{Delay: d.cfg.DemoDelay}},
			{"tck", demoagent.TCKCard("tck"), demoagent.TCK{}},
		} {
			tasks, err := a2anats.NewTaskStore(ctx, bus, a.id, 0)
			if err != nil {
				return nil, err
			}
			s, err := a2anats.NewServer(bus, a2asrv.NewHandler(a.exec, a2asrv.WithTaskStore(tasks), a2asrv.WithLogger(d.log.With("component", "a2a")),
				a2asrv.WithPushNotifications(tasks.PushConfigs(), pushes.For(a.id))),
				a2anats.ServerLogger(d.log), a2anats.ServerMetrics(metrics))
			if err != nil {
				return nil, err
			}
			servers = append(servers, s)
			if err := bus.Handle(a.id, d.demoHandler(bus, s, a.id)); err != nil {
				return nil, err
			}
			a.card.Capabilities.PushNotifications = true
			if err := reg.Register(ctx, a.id, a.card, d.natsHost()); err != nil {
				return nil, err
			}
			hosted = append(hosted, a.id)
		}
	}
	for _, sc := range sidecars {
		cctx, cancel := context.WithTimeout(ctx, sidecarCardTimeout)
		s, err := gateway.ServeSidecar(cctx, bus, reg, sc, http.DefaultClient, d.log, a2anats.ServerMetrics(metrics))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("sidecar %s: %w", sc.ID, err)
		}
		servers = append(servers, s)
		hosted = append(hosted, sc.ID)
		d.log.Info("serving an A2A HTTP agent on the bus", "agent", sc.ID, "url", sc.URL)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if len(hosted) == 0 {
		d.log.Info("hosting no agents: no consumers to run (--demo or --sidecars host some)")
		return closeAll, nil
	}
	// Declared before agentd is ready, as its consumers will (they start
	// in the background): calls to the hosted agents made as soon as it is
	// ready are routed to the pool, not refused as unknown agents.
	if _, err := bus.Declare(ctx, agentbus.PoolConfig{Name: d.cfg.Pool, Partitions: d.cfg.Partitions}, hosted...); err != nil {
		return nil, fmt.Errorf("--pool %s: %w", d.cfg.Pool, err)
	}
	pool, err := newConsumerPool(bus, js, d.log, d.reg, d.cfg.Pool, d.cfg.Consumers,
		agentbus.ServePartitions(d.cfg.Partitions), agentbus.ServeAgents(hosted...),
		agentbus.ServeMemberTTL(d.cfg.MemberTTL), agentbus.ServeHandlerTimeout(d.cfg.HandlerTimeout),
		agentbus.ServeDrainTimeout(d.cfg.DrainTimeout),
		// A stored A2A call holds its handler slot until it ends: as many
		// slots as the A2A servers run calls.
		agentbus.ServeWorkers(a2anats.DefaultMaxCalls))
	if err != nil {
		return nil, err
	}
	d.consumers.Store(pool)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pool.run(sctx)
	}()
	d.log.Info("hosting agents", "pool", d.cfg.Pool, "agents", hosted, "worker_delay", d.cfg.DemoDelay, "host", pool.id)
	return func(ctx context.Context) {
		cancel()
		<-done
		if err := pool.wait(ctx); err != nil {
			d.log.Warn("stopping consumers", "err", err)
		}
		closeAll(ctx)
	}, nil
}

// demoHandler serves a demo agent's A2A calls with s, and answers a plain
// envelope with a text message: the text it got from echo, "done: <text>"
// from worker after its delay.
func (d *Daemon) demoHandler(bus *agentbus.Bus, s *a2anats.Server, id string) agentbus.Handler {
	return func(ctx context.Context, env *codec.Envelope) error {
		if a2anats.IsCall(env) {
			return s.Handle(ctx, env)
		}
		text := textOf(env)
		if id == "worker" {
			select {
			case <-time.After(d.cfg.DemoDelay):
			case <-ctx.Done():
				return ctx.Err()
			}
			text = "done: " + text
		}
		return bus.Reply(ctx, env, &codec.Envelope{Kind: "message", Message: &codec.Message{
			MessageID: "reply-" + env.ID, Role: codec.RoleAgent, Parts: []codec.Part{codec.TextPart(text)},
		}})
	}
}

// textOf returns the text of env's A2A message, or "" when it has none.
func textOf(env *codec.Envelope) string {
	if env.Message == nil {
		return ""
	}
	return env.Message.Text()
}
