// Package scalerd is the scaler daemon behind cmd/scalerd, and its
// simulator command.
//
// # The daemon
//
// "scalerd" (no command) runs the daemon. It scales each pool
// (agentbus.ServePool: agentd's --pool, or an agent process's own pool)
// apart: every --interval (default 15 s) it samples the bus, by pool:
//
//   - the backlog, through the JetStream API (never the monitoring
//     endpoint): the info of every partition's durable consumer on stream
//     A2A (<pool>_pNNNN, grouped by pool; NumPending waiting,
//     NumAckPending in flight; each consumer's leader answers for it). A
//     pool's finished count is the rise of its consumers' ack floors (a
//     partition has at most one message out, MaxAckPending 1), its
//     received count that plus the rise of its backlog. All are stored
//     messages: batches of A2A messages, so the arrival and handled rates
//     and the thresholds (--scale-up-backlog) are in batches, as KEDA's
//     nats-jetstream lag is.
//   - the consumers, from the members bucket (agentbus.Bus.Members),
//     grouped by Member.Pool: each member's process CPU; a member that has
//     not reported its CPU yet has just started and is not ready.
//
// A pool has reported once it has partition consumers or live members;
// scalerd decides only for pools that have reported. A pool that is only
// declared in the registry, even with messages waiting for it, is left
// alone: its target stays unset (agentd then runs its --consumers
// default, whose members make the pool report). A pool whose consumers
// and members are all gone is forgotten, with its metric series.
//
// Each pool has a scaling policy of its own (package scaler, the same
// settings for every pool, so --min-consumers and --max-consumers bound
// each pool), which decides the pool's consumer count from the pool's
// sample. The count it starts from is the pool's live members, or its
// stored target's count while that target's new consumers have had less
// than --lead to start. While this scalerd leads and is not a --dry-run, a
// decision that steps to a count other than the stored target's is written
// as the pool's scale target (agentbus.Bus.SetScaleTarget, bucket
// a2abus_scale, key pools.<pool>; "nats kv history a2abus_scale
// pools.<pool>" lists past decisions with their reasons), which every
// agentd of the pool follows; an unchanged target is written again every
// 20 intervals, to show the leader is alive.
//
// Leader election: two or more scalerds share KV bucket a2abus_scaler, key
// "leader", whose TTL is --lease (default 10 s), through package
// internal/lease. Create wins the key; the leader refreshes it every
// lease/3 with an Update at its last revision, and again right before it
// writes a target, so a refresh the server refuses (another scalerd took
// the key after ours expired) stops it acting at once. A leader whose
// refreshes go unanswered stops at its lease's deadline, 9/10 of the lease
// after it sent the last refresh that was answered: before the server can
// let the key expire.
// Standbys try Create every lease/3 and whenever the key is deleted: a
// leader that stops cleanly deletes its key and is replaced at once, a
// leader that dies is replaced a lease after its last refresh. Standbys
// sample and decide too, so their policy and metrics are warm when they
// take over; they report leader 0 and write nothing.
//
// Flags (each also a SCALERD_* environment variable, --dry-run being
// SCALERD_DRY_RUN; a flag given wins over the variable): --nats URL (default
// nats://127.0.0.1:4222, agentd's embedded server), --interval, --dry-run,
// --http ADDR (default 127.0.0.1:8081), --lease, --id, --log-level,
// --log-format, and the policy's bounds, thresholds and timings:
// --min-consumers, --max-consumers, --scale-up-cpu, --scale-down-cpu,
// --target-cpu, --scale-up-backlog, --scale-down-backlog, --horizon,
// --scale-up-growth, --scale-down-growth, --min-confidence, --alpha, --beta,
// --noise-headroom, --lead, --drain-time, --scale-up-cooldown,
// --scale-down-cooldown, --up-hold, --stabilization-window,
// --consumer-capacity. A bad value exits 2 with one line naming the flag.
// The daemon retries the bus until its stream exists, so it may start
// before agentd. SIGTERM stops it: it resigns and exits 0.
//
// HTTP, on --http: /metrics (its own registry: a2abus_scaler_* gauges of
// each pool's backlog, rates, CPU, consumers, forecast, predicted growth,
// desired and stored counts, labelled pool, e.g.
// a2abus_scaler_target_consumers{pool="agentd"}; a2abus_scaler_decisions_total
// by pool, direction and trigger; a2abus_scaler_target_writes_total by
// pool; a2abus_scaler_pools, a2abus_scaler_leader; the bus connection's
// and the Go runtime's metrics), /healthz (200 while the process runs),
// /readyz (200 once connected to the bus and sampled once), /scale, the
// latest decision of every pool that has reported, and /scale/{pool}, one
// pool's (404 for a pool that has not reported):
//
//	GET /scale/agentd
//	{"pool": "agentd", "desiredConsumers": 6,
//	 "reason": "backlog 926 > 500: 1 → 6 consumers", "trigger": "backlog",
//	 "leader": true, "dryRun": false, "at": "2026-11-26T13:18:27Z",
//	 "consumers": 1, "live": 1, "ready": 1, "target": {...},
//	 "backlog": 1100, "waiting": 926, ...}
//
//	GET /scale
//	{"id": "scalerd-1", "leader": true, "dryRun": false, "at": "...",
//	 "pools": {"agentd": {...}, "research": {...}}}
//
// KEDA: agentd follows its pool's target in KV by itself, so KEDA is not
// needed to run more consumers on the hosts there are. To let KEDA add or
// remove a pool's agentd pods (hosts) as well, give each pool's deployment
// a ScaledObject whose metrics-api trigger reads that pool's
// /scale/{pool} (deploy/keda.yaml):
//
//	triggers:
//	- type: metrics-api
//	  metadata:
//	    url: "http://scalerd.a2abus.svc:8081/scale/agentd"
//	    valueLocation: "desiredConsumers"
//	    targetValue: "4"      # consumers per agentd pod
//
// With the default AverageValue metric type the HPA runs
// ceil(desiredConsumers / targetValue) pods. Every scalerd decides, so any
// of them answers; the leader's decision is the one written (its "leader"
// is true). Until the pool reports, /scale/{pool} answers 404, which KEDA
// counts as a failed read: after failureThreshold of them the deployment
// runs its fallback replicas (deploy/keda.yaml sets one), and its first
// agentd's default consumers make the pool report.
//
// # The simulator
//
// "scalerd sim" replays load traces against a simulated consumer pool
// under the a2abus scaling policy and a KEDA/HPA-style baseline and prints
// what each cost.
//
// Main is the whole program; cmd/scalerd only wires it to the process:
//
//	os.Exit(scalerd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv))
//
// Concurrency: Main is safe to call concurrently with distinct writers and
// HTTP addresses. A Daemon's methods are safe for concurrent use; Shutdown
// is idempotent.
package scalerd
