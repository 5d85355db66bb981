// Package faults is the fault-injection suite, the power-loss suite and
// the soak of a2abus: real agentbus publishers and consumers on a real
// 3-node embedded NATS cluster (file store, R3 stream), faults injected
// from outside, and a ledger that books every send and every handler call
// to say what was lost, what was handled twice, what was handled out of
// order and what was handled by two members at once.
//
// # The suite
//
//	go test -race -tags=faults -count=1 -timeout 8m ./internal/faults/
//
// Nine scenarios, each on a cluster of its own. Six inject faults into
// short-lived consumers with handlers that take no time: a consumer killed
// in the middle of a batch, the stream leader's node restarted, every node
// restarted, the stream leader's node cut off from its routes, slow
// consumers (a batch takes longer than the ack wait), and a reconnect storm
// of publishers. Three are the ownership scenarios of issue 13: 40 agents
// with 3 conversations each, handlers as long as LLM calls (HandlerTime),
// the default member TTL and ack wait, 4 members, and then members joining
// and one leaving gracefully, a member killed, or a member stalled past its
// TTL (cut off at its Link) while one of its handlers runs longer than the
// ack wait, which must see agentbus.ErrFenced before another member begins
// its batch.
//
// After each the load stops and the run drains; then every acknowledged
// send must have been handled (0 lost), every handled envelope must have
// been sent, every duplicate must carry its message's first envelope ID,
// handling a message twice is allowed only where the at-least-once contract
// allows it (a consumer or a server crashed, or the publisher itself sent
// the message again after a failed Send), and the ledger must find every
// ordering key (agent and agentbus.Conversation) first handled in send
// order (Ledger.Order) and no two handler calls of one key running at once,
// on one member or two (Counts.Overlaps). Each scenario logs its counts
// (with -v), and the run prints a summary.
//
// # The power-loss suite
//
//	go test -tags=powerloss -count=1 -timeout 15m ./internal/lazyfs/ ./internal/faults/
//
// needs root and FUSE (internal/lazyfs says what is missing). Each node
// keeps its store on a lazy filesystem (WithLazyStores), which drops
// what was not fsynced when the power goes. The stores are synced once
// the run is set up; then two publishers send under a load that two
// slowed consumers cannot keep up with, so that acknowledged sends wait
// in the stream, and Cluster.PowerLoss cuts the power: every server's (a
// coordinated power loss; R1 runs one standalone server, as agentd does)
// or, on R3, the stream leader's alone while the others run. The servers
// come back, the load goes on, the run drains, and the suite prints per
// profile (R1 and R3, sync_interval 2m, 1s and always) what was
// acknowledged, what waited unhandled at the cut, what was lost, the
// duplicates and how long the stream and the sends took to come back.
// sync always must lose nothing acknowledged; sync 2m must lose something
// to a coordinated power loss, or the lazy filesystem is not doing its
// job. TestPowerLossDirectoryEntries shows what nats-server's unsynced
// directory entries cost under POSIX's letter. -powerloss.repeats N runs
// each scenario N times; -powerloss.entries strict runs them under
// POSIX's letter instead of a journaling filesystem's rules.
//
// # The soak
//
//	go run ./internal/faults/cmd/soak --duration 10m
//
// runs mixed load (publishers through proxies, three consumers) with one
// fault per interval (--interval, default 20 s), in turn: a consumer
// killed and replaced, the stream leader restarted, a node's routes cut
// for 5 s, a publisher reconnect storm, a slow consumer, every node
// restarted. It prints one line per interval: heap in use and goroutines
// (after a GC), sends acknowledged, envelopes handled, duplicates, and
// acknowledged messages not handled yet. Then it drains and prints the
// verdict: memory flat, goroutines flat, loss zero, order kept (exit
// status 1 when one fails). -v logs the servers' and buses' warnings to stderr.
//
// # The harness
//
// The package's untagged files are the harness, shared by all three: Cluster
// (nodes whose routes and client connections pass through Proxy, so that
// a node can be cut off and every client dropped, and Links, one client's
// own proxies, so that one member can be cut off; optionally with stores
// on lazy filesystems whose power can be cut), Consumer (a member that
// can be stopped, slowed, held in a handler, or killed mid-batch: its link
// cut and its connection closed with its batches unacknowledged and its
// handlers doing nothing more, as a crashed process), Publish (paced
// bursts, with application retries that resend the same envelope),
// Converse (rounds of one message to every conversation of every agent)
// and Ledger (sends, handler calls with their start and end, first
// handlings in order).
//
// All exported functions and methods are safe for concurrent use unless
// specified otherwise.
package faults
