package agentd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/a2abus/a2abus/internal/bench"
)

// benchCmd runs "agentd bench SCENARIO [flags]".
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "agentd: bench: name a scenario: throughput, latency, e2e, a2a, pool, placement or durability")
		return exitUsage
	}
	scenario, args := args[0], args[1:]
	fs := flag.NewFlagSet("agentd bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print one JSON object as the last line of stdout")
	url := fs.String("nats", "", "NATS server `URL`; empty starts an embedded server in a temporary directory")
	var tc bench.ThroughputConfig
	fs.IntVar(&tc.Msgs, "msgs", 200_000, "messages per party and sender count")
	fs.IntVar(&tc.MsgSize, "size", 256, "message payload `bytes`")
	fs.IntVar(&tc.Destinations, "destinations", 64, "destination agents")
	senders := fs.String("senders", "1,4", "sender counts to run, comma-separated (throughput)")
	var lc bench.LatencyConfig
	fs.IntVar(&lc.Requests, "requests", 2000, "sequential round trips per party (latency); requests per party from --clients clients (a2a, default 8000)")
	var ac bench.A2AConfig
	fs.IntVar(&ac.Clients, "clients", 64, "concurrent a2a-go clients per party (a2a)")
	parties := fs.String("parties", "", "run only these parties, comma-separated (default all): bus, bus_traced, raw_js, core; for a2a nats_durable, nats_direct, http, gateway, gateway_direct")
	var pc bench.PoolConfig
	members := fs.String("members", "1,2,4", "member counts to run, comma-separated (pool)")
	fs.IntVar(&pc.Conversations, "conversations", 64, "conversations of the one busy agent (pool)")
	fs.IntVar(&pc.PerConv, "per-conversation", 60, "envelopes per conversation and run (pool)")
	fs.IntVar(&pc.Workers, "workers", 4, "handlers at once per member (pool)")
	fs.DurationVar(&pc.Handler, "handler", 20*time.Millisecond, "handler `time` per envelope (pool)")
	fs.IntVar(&pc.Partitions, "partitions", 64, "the pool's partition `count` (pool)")
	fs.Float64Var(&tc.TraceSampling, "trace-sampling", 0, "also run the bus traced with OpenTelemetry, sampling this `ratio` of traces (0..1), and print its ratio to the untraced bus (throughput)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "agentd: bench %s: %v\n", scenario, err)
		return exitUsage
	}
	for _, s := range strings.Split(*senders, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench %s: --senders %q: want comma-separated counts\n", scenario, *senders)
			return exitUsage
		}
		tc.Senders = append(tc.Senders, n)
	}
	if *parties != "" {
		tc.Parties = strings.Split(*parties, ",")
	}
	switch scenario {
	case "throughput", "latency", "e2e":
	case "pool":
		pc.Members = nil
		for _, s := range strings.Split(*members, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				fmt.Fprintf(stderr, "agentd: bench pool: --members %q: want comma-separated counts\n", *members)
				return exitUsage
			}
			pc.Members = append(pc.Members, n)
		}
		if err := pc.Validate(); err != nil {
			fmt.Fprintf(stderr, "agentd: %v\n", err)
			return exitUsage
		}
	case "a2a":
		if explicit(fs, "requests") {
			ac.Requests = lc.Requests
		}
		if ac.Clients < 1 || ac.Requests < 0 || explicit(fs, "requests") && ac.Requests == 0 {
			fmt.Fprintln(stderr, "agentd: bench a2a: --clients and --requests want positive counts")
			return exitUsage
		}
		ac.MsgSize, ac.Parties, tc.Parties = tc.MsgSize, tc.Parties, nil
		if err := ac.Validate(); err != nil {
			fmt.Fprintf(stderr, "agentd: %v\n", err)
			return exitUsage
		}
	case "placement": // pure computation: no server
		res, err := bench.Placement(ctx, bench.PlacementConfig{})
		if err == nil {
			err = bench.WritePlacement(stdout, res, *asJSON)
		}
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench placement: %v\n", err)
			return exitError
		}
		return exitOK
	case "durability": // its own servers, one set per profile
		if *url != "" {
			fmt.Fprintln(stderr, "agentd: bench durability: --nats: the scenario starts its own servers, one set per profile")
			return exitUsage
		}
		dir, err := os.MkdirTemp("", "a2abus-bench-*")
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench: %v\n", err)
			return exitError
		}
		defer os.RemoveAll(dir)
		msgs := tc.Msgs
		if !explicit(fs, "msgs") {
			msgs = 0 // the scenario's own default
		}
		res, err := bench.Durability(ctx, dir, bench.DurabilityConfig{Msgs: msgs}, stderr)
		if err == nil {
			err = bench.WriteDurability(stdout, res, *asJSON)
		}
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench durability: %v\n", err)
			return exitError
		}
		return exitOK
	default:
		fmt.Fprintf(stderr, "agentd: bench: unknown scenario %q (want throughput, latency, e2e, a2a, pool, placement or durability)\n", scenario)
		return exitUsage
	}
	lc.MsgSize = tc.MsgSize
	if err := tc.Validate(); err != nil {
		fmt.Fprintf(stderr, "agentd: %v\n", err)
		return exitUsage
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench: --cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "agentd: bench: --cpuprofile: %v\n", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
	env := bench.Env{URL: *url, Progress: stderr}
	if *url == "" {
		dir, err := os.MkdirTemp("", "a2abus-bench-*")
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench: %v\n", err)
			return exitError
		}
		defer os.RemoveAll(dir)
		srv, e, err := bench.StartEmbedded(ctx, dir, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "agentd: bench: %v\n", err)
			return exitError
		}
		defer func() { _ = srv.Shutdown(context.Background()) }()
		env = e
	}
	var err error
	switch scenario {
	case "throughput":
		var res bench.ThroughputResult
		if res, err = bench.Throughput(ctx, env, tc); err == nil {
			err = bench.WriteThroughput(stdout, res, *asJSON)
		}
	case "e2e":
		var res bench.E2EResult
		if res, err = bench.E2E(ctx, env, tc); err == nil {
			err = bench.WriteE2E(stdout, res, *asJSON)
		}
	case "a2a":
		var res bench.A2AResult
		if res, err = bench.A2A(ctx, env, ac); err == nil {
			err = bench.WriteA2A(stdout, res, *asJSON)
		}
	case "pool":
		var res bench.PoolResult
		if res, err = bench.Pool(ctx, env, pc); err == nil {
			err = bench.WritePool(stdout, res, *asJSON)
		}
	case "latency":
		var res bench.LatencyResult
		if res, err = bench.Latency(ctx, env, lc); err == nil {
			err = bench.WriteLatency(stdout, res, *asJSON)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentd: bench: %v\n", err)
		return exitError
	}
	return exitOK
}

// explicit reports whether the flag name was given on the command line.
func explicit(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
