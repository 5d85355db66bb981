package agentbus_test

import (
	"context"
	"fmt"
	"log"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
)

// Example declares the agent weather in a pool of its own, sends it one
// A2A message through a bus on an embedded server, and shows where the
// message was stored: the partition of its conversation (here its sender,
// planner) in the pool weather.
func Example() {
	ctx := context.Background()
	srv, err := embedded.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)

	bus, err := agentbus.Connect(ctx,
		agentbus.WithInProcessServer(srv.NATSServer()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)

	// Serve declares its pool when it starts; a sender that may run first
	// declares it too (or connects WithUnknownAgents(WaitUnknown)).
	pool, err := bus.Declare(ctx, agentbus.PoolConfig{Name: "weather", Partitions: 8}, "weather")
	if err != nil {
		log.Fatal(err)
	}
	env := &codec.Envelope{
		From: "planner",
		To:   "weather",
		Message: &codec.Message{
			MessageID: "m-1",
			Role:      codec.RoleUser,
			Parts:     []codec.Part{codec.TextPart("Will it rain in Lyon tomorrow?")},
		},
	}
	if err := bus.Send(ctx, env); err != nil {
		log.Fatal(err)
	}
	subject, _ := pool.Subject("weather", pool.Partition("weather", agentbus.Conversation(env)))
	fmt.Println("stored on", subject)
	// Output: stored on a2a.in.weather.p0005.weather
}

// ExampleConversation shows which conversation an envelope belongs to,
// which with its destination agent makes its ordering key.
func ExampleConversation() {
	msg := &codec.Envelope{From: "planner", To: "weather", Message: &codec.Message{ContextID: "trip-42"}}
	fmt.Println(agentbus.Conversation(msg))

	plain := &codec.Envelope{From: "planner", To: "weather", Payload: "ping"}
	fmt.Println(agentbus.Conversation(plain))

	plain.Headers.Set(agentbus.HeaderContextID, "trip-43")
	fmt.Println(agentbus.Conversation(plain))
	// Output:
	// trip-42
	// planner
	// trip-43
}
