package agentd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nuid"
)

// sendCmd runs "agentd send --to AGENT [--from AGENT] [--nats URL] TEXT":
// one A2A text message, stored before the command returns.
func sendCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentd send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "destination agent `ID` (required)")
	from := fs.String("from", "agentd-cli", "sender agent `ID`")
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server `URL`s, comma-separated")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this `duration`")
	wait := fs.Bool("wait", false, "wait for the agent's reply and print its text")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprintln(stdout, "Usage: agentd send --to AGENT [--wait] [--from AGENT] [--nats URL] [--timeout D] TEXT")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "agentd: send: %v\n", err)
		return exitUsage
	}
	text := strings.Join(fs.Args(), " ")
	switch {
	case *to == "":
		fmt.Fprintln(stderr, "agentd: send: --to is required")
		return exitUsage
	case text == "":
		fmt.Fprintln(stderr, "agentd: send: no message text")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "agentd: send: --timeout %v must be positive\n", *timeout)
		return exitUsage
	}
	// What the bus warns about (a reconnect, a retried publish) goes to
	// stderr, beside the command's own errors.
	warnings := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus, err := agentbus.Connect(ctx, agentbus.WithURL(*url), agentbus.WithName("agentd-send"),
		agentbus.WithConnectTimeout(*timeout), agentbus.WithSendTimeout(*timeout), agentbus.WithLogger(warnings))
	if err != nil {
		fmt.Fprintf(stderr, "agentd: send: --nats %s: %v\n", *url, err)
		return exitError
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		_ = bus.Close(cctx)
	}()
	id := nuid.Next()
	env := &codec.Envelope{
		ID: id, From: *from, To: *to, Kind: "message",
		Message: &codec.Message{MessageID: id, Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart(text)}},
	}
	if *wait {
		reply, err := bus.Request(ctx, env, agentbus.Durable)
		if err != nil {
			fmt.Fprintf(stderr, "agentd: send: %v\n", err)
			return exitError
		}
		fmt.Fprintln(stdout, textOf(reply))
		return exitOK
	}
	if err := bus.Send(ctx, env); err != nil {
		fmt.Fprintf(stderr, "agentd: send: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, id)
	return exitOK
}
