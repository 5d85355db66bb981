package agentbus_test

import (
	"context"
	"fmt"
	"log"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
)

// Example sends one A2A message through a bus on an embedded server and
// shows where it was stored.
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

	err = bus.Send(ctx, &codec.Envelope{
		From: "planner",
		To:   "weather",
		Message: &codec.Message{
			MessageID: "m-1",
			Role:      codec.RoleUser,
			Parts:     []codec.Part{codec.TextPart("Will it rain in Lyon tomorrow?")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	subject, _ := bus.Groups().Subject("weather")
	fmt.Println("stored on", subject)
	// Output: stored on a2a.in.g0016.weather
}
