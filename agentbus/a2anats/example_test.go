package a2anats_test

import (
	"context"
	"fmt"
	"iter"
	"log"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// greeter is an A2A SDK agent: it answers a message with a greeting.
type greeter struct{}

func (greeter) Execute(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("hello, "+ec.Message.Parts[0].Text())), nil)
	}
}

func (greeter) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) { yield(nil, a2a.ErrTaskNotCancelable) }
}

// Example serves an A2A SDK agent on the bus, registers its card, and
// calls it with the SDK's client over the bus binding.
func Example() {
	ctx := context.Background()
	srv, err := embedded.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	bus, err := agentbus.Connect(ctx,
		agentbus.WithInProcessServer(srv.NATSServer()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}),
		// A call to an agent whose pool is not declared yet waits for it
		// (Serve declares it as it starts) instead of failing at once.
		agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)

	// The agent's side.
	agent, err := a2anats.Handle(bus, "greeter", a2asrv.NewHandler(greeter{}))
	if err != nil {
		log.Fatal(err)
	}
	defer agent.Close(ctx)
	registry, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		log.Fatal(err)
	}
	card := &a2a.AgentCard{Name: "greeter", Description: "greets", Version: "1",
		DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"}}
	if err := registry.Register(ctx, "greeter", card, ""); err != nil {
		log.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	// A process that serves one agent is a pool of its own, named after it.
	go func() { _ = bus.Serve(serveCtx) }()

	// The caller's side: the card from the registry, one option.
	card, err = registry.Card(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	client, err := a2aclient.NewFromCard(ctx, card, a2anats.WithTransport(bus))
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.SendMessage(ctx, &a2a.SendMessageRequest{
		Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("bus")),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.(*a2a.Message).Parts[0].Text())
	// Output: hello, bus
}
