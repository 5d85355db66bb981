package agentbus

import (
	"fmt"
	"runtime"
	"time"

	"github.com/a2abus/a2abus/placement"
)

// ServeOption configures Serve.
type ServeOption func(*serveConfig) error

type serveConfig struct {
	pool           string
	partitions     int
	order          placement.Order
	agents         []string // nil: every agent with a handler when Serve starts
	memberTTL      time.Duration
	memberID       string
	workers        int
	maxAttempts    int
	ackWait        time.Duration
	retryBackoff   time.Duration
	maxRetryWait   time.Duration
	handlerTimeout time.Duration
	drainTimeout   time.Duration
	maxHeldBytes   int64
	onReady        func()
}

// Receive-path defaults.
const (
	DefaultMaxAttempts  = 5
	DefaultAckWait      = 5 * time.Second
	DefaultRetryBackoff = 100 * time.Millisecond
	DefaultMaxRetryWait = 5 * time.Second
	// DefaultHandlerTimeout bounds one handler attempt: sized for agents
	// whose handlers are LLM calls.
	DefaultHandlerTimeout = 15 * time.Minute
	// DefaultDrainTimeout is how long a stopping Serve lets the handlers
	// running finish before it cancels their contexts.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultMaxHeldBytes bounds the stored batches a member decodes and
	// handles at once, by their frames' size.
	DefaultMaxHeldBytes = 64 << 20
)

func defaultServeConfig() serveConfig {
	return serveConfig{
		partitions:     DefaultPartitions,
		workers:        16 * runtime.GOMAXPROCS(0),
		maxAttempts:    DefaultMaxAttempts,
		ackWait:        DefaultAckWait,
		retryBackoff:   DefaultRetryBackoff,
		maxRetryWait:   DefaultMaxRetryWait,
		memberTTL:      DefaultMemberTTL,
		handlerTimeout: DefaultHandlerTimeout,
		drainTimeout:   DefaultDrainTimeout,
		maxHeldBytes:   DefaultMaxHeldBytes,
	}
}

// ServePool names the pool this member serves (default: the agent's ID
// when the bus has one handler, else DefaultPoolName). A pool's members
// are interchangeable: they must serve the same agents.
func ServePool(name string) ServeOption {
	return func(c *serveConfig) error {
		if err := placement.ValidatePoolName(name); err != nil {
			return fmt.Errorf("agentbus: serve: %w", err)
		}
		c.pool = name
		return nil
	}
}

// ServePartitions sets the pool's partition count, 1..placement.MaxGroups
// (default DefaultPartitions). It is fixed when the pool is first
// declared: a member that asks for another count is refused.
func ServePartitions(n int) ServeOption {
	return func(c *serveConfig) error {
		if n < 1 || n > placement.MaxGroups {
			return fmt.Errorf("agentbus: %d partitions, want 1..%d", n, placement.MaxGroups)
		}
		c.partitions = n
		return nil
	}
}

// ServeOrder sets what the pool keeps in order (default
// placement.OrderConversation). Fixed when the pool is first declared.
func ServeOrder(o placement.Order) ServeOption {
	return func(c *serveConfig) error {
		if o > placement.OrderAgent {
			return fmt.Errorf("agentbus: order %v", o)
		}
		c.order = o
		return nil
	}
}

// ServeAgents sets the agents this member declares for its pool (default:
// every agent with a handler when Serve starts). Each must have a handler.
func ServeAgents(ids ...string) ServeOption {
	return func(c *serveConfig) error {
		for _, id := range ids {
			if err := placement.ValidateAgentID(id); err != nil {
				return fmt.Errorf("agentbus: serve agents: %w", err)
			}
		}
		c.agents = append([]string{}, ids...)
		return nil
	}
}

// ServeWorkers sets how many handlers run at once in this member (default
// 16 × GOMAXPROCS: handlers mostly wait on I/O). Envelopes of different
// keys share these slots; a slow handler takes one and holds back only
// its own key.
func ServeWorkers(n int) ServeOption {
	return func(c *serveConfig) error {
		if n < 1 {
			return fmt.Errorf("agentbus: %d workers", n)
		}
		c.workers = n
		return nil
	}
}

// ServeMaxHeldBytes bounds the stored batches this member decodes and
// handles at once, by the size of their frames (default
// DefaultMaxHeldBytes). A batch delivered while the bound is reached waits,
// undecoded and held (kept from redelivery), until earlier batches are
// done; a batch larger than the bound waits until it can run alone. Each
// partition has one batch out at a time, so the batches waiting are at
// most one per partition the member pulls: the member's stored batches in
// memory are at most n plus its partitions × the server's max payload,
// however many partitions and however slow its handlers.
func ServeMaxHeldBytes(n int64) ServeOption {
	return func(c *serveConfig) error {
		if n < 1 {
			return fmt.Errorf("agentbus: max held bytes %d: want at least 1", n)
		}
		c.maxHeldBytes = n
		return nil
	}
}

// ServeOnReady has f called, once and in a goroutine of its own, when this
// member has joined its pool and pulls every partition assigned to it (at
// once, if it is assigned none): from then on it consumes. Readiness
// checks wait for it.
func ServeOnReady(f func()) ServeOption {
	return func(c *serveConfig) error {
		if f == nil {
			return fmt.Errorf("agentbus: serve: nil ready function")
		}
		c.onReady = f
		return nil
	}
}

// ServeMaxAttempts sets how often a handler is tried on one envelope before
// the envelope is dead-lettered (default 5).
func ServeMaxAttempts(n int) ServeOption {
	return func(c *serveConfig) error {
		if n < 1 {
			return fmt.Errorf("agentbus: max attempts %d must be positive", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// ServeRetryBackoff sets the wait after the first failed attempt, doubled
// after each further one up to max (defaults 100 ms and 5 s).
func ServeRetryBackoff(first, max time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if first <= 0 || max < first {
			return fmt.Errorf("agentbus: retry back-off %v..%v", first, max)
		}
		c.retryBackoff, c.maxRetryWait = first, max
		return nil
	}
}

// ServeAckWait sets how long JetStream waits for a batch's ack before it
// may redeliver the batch, to another member if this one is gone (default
// 5 s). While a batch is handled its member renews the wait with
// confirmed progress acks every quarter of it; a member that cannot get
// one confirmed before the wait would pass stops handling the batch (see
// ErrFenced). A member that dies holding a batch delays its partition by
// this long.
func ServeAckWait(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d < time.Second {
			return fmt.Errorf("agentbus: ack wait %v under 1s", d)
		}
		c.ackWait = d
		return nil
	}
}

// ServeHandlerTimeout bounds one handler attempt (default 15 min): past
// it the handler's context is canceled (its cause ErrHandlerTimeout) and
// the attempt counts as failed.
func ServeHandlerTimeout(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d <= 0 {
			return fmt.Errorf("agentbus: handler timeout %v must be positive", d)
		}
		c.handlerTimeout = d
		return nil
	}
}

// ServeDrainTimeout sets how long a stopping Serve lets running handlers
// finish before it cancels their contexts (default 30 s). The batches it
// could not finish are released for the next member.
func ServeDrainTimeout(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d < 0 {
			return fmt.Errorf("agentbus: drain timeout %v is negative", d)
		}
		c.drainTimeout = d
		return nil
	}
}
