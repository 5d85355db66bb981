package placement_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/a2abus/a2abus/placement"
)

func mustPool(t testing.TB, name string, partitions int, order placement.Order) *placement.Pool {
	t.Helper()
	p, err := placement.NewPool(name, partitions, order)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// keys returns n distinct strings with the given prefix.
func keys(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return ks
}

func TestNewPool(t *testing.T) {
	tests := []struct {
		name       string
		pool       string
		partitions int
		order      placement.Order
		wantErr    error
		wantMsg    string // a part of the error message
	}{
		{name: "default", pool: "agentd", partitions: placement.DefaultGroups},
		{name: "agent order", pool: "agentd", partitions: 16, order: placement.OrderAgent},
		{name: "one partition", pool: "p", partitions: 1},
		{name: "max partitions", pool: "p", partitions: placement.MaxGroups},
		{name: "dash and underscore", pool: "my_pool-2", partitions: 8},
		{name: "max name length", pool: strings.Repeat("n", placement.MaxPoolNameLen), partitions: 8},
		{name: "empty name", pool: "", partitions: 8, wantErr: placement.ErrInvalidPool, wantMsg: "empty"},
		{name: "name too long", pool: strings.Repeat("n", placement.MaxPoolNameLen+1), partitions: 8,
			wantErr: placement.ErrInvalidPool, wantMsg: "65 bytes long, limit 64"},
		{name: "dot", pool: "agent.d", partitions: 8, wantErr: placement.ErrInvalidPool,
			wantMsg: `character '.' (U+002E) at offset 5 (a dot separates subject tokens)`},
		{name: "wildcard", pool: "agentd>", partitions: 8, wantErr: placement.ErrInvalidPool,
			wantMsg: `character '>' (U+003E) at offset 6 (a subject wildcard)`},
		{name: "space", pool: "agent d", partitions: 8, wantErr: placement.ErrInvalidPool,
			wantMsg: `character ' ' (U+0020) at offset 5`},
		{name: "non-ASCII", pool: "poolé", partitions: 8, wantErr: placement.ErrInvalidPool,
			wantMsg: `character 'é' (U+00E9) at offset 4`},
		{name: "invalid UTF-8", pool: "p\xff", partitions: 8, wantErr: placement.ErrInvalidPool,
			wantMsg: "byte 0xff at offset 1 is not valid UTF-8"},
		{name: "zero partitions", pool: "agentd", partitions: 0, wantErr: placement.ErrInvalidOption, wantMsg: "0 partitions"},
		{name: "negative partitions", pool: "agentd", partitions: -1, wantErr: placement.ErrInvalidOption},
		{name: "too many partitions", pool: "agentd", partitions: placement.MaxGroups + 1,
			wantErr: placement.ErrInvalidOption, wantMsg: "10001 partitions, want 1..10000"},
		{name: "bad order", pool: "agentd", partitions: 8, order: placement.Order(2),
			wantErr: placement.ErrInvalidOption, wantMsg: "Order(2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := placement.NewPool(tt.pool, tt.partitions, tt.order)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewPool(%q, %d, %v) error %v, want %v", tt.pool, tt.partitions, tt.order, err, tt.wantErr)
			}
			if err != nil {
				if p != nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("NewPool(%q, %d, %v) = %v, %q; want nil and a message containing %q",
						tt.pool, tt.partitions, tt.order, p, err, tt.wantMsg)
				}
				if vErr := placement.ValidatePoolName(tt.pool); errors.Is(tt.wantErr, placement.ErrInvalidPool) != (vErr != nil) {
					t.Errorf("ValidatePoolName(%q) = %v, disagrees with NewPool", tt.pool, vErr)
				}
				return
			}
			if p.Name() != tt.pool || p.Partitions() != tt.partitions || p.Order() != tt.order {
				t.Errorf("NewPool(%q, %d, %v): Name %q, Partitions %d, Order %v",
					tt.pool, tt.partitions, tt.order, p.Name(), p.Partitions(), p.Order())
			}
		})
	}
}

func TestParseOrder(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    placement.Order
		wantErr error
	}{
		{name: "conversation", in: "conversation", want: placement.OrderConversation},
		{name: "agent", in: "agent", want: placement.OrderAgent},
		{name: "empty is the default", in: "", want: placement.OrderConversation},
		{name: "capitalised", in: "Agent", wantErr: placement.ErrInvalidOption},
		{name: "space", in: " agent", wantErr: placement.ErrInvalidOption},
		{name: "unknown", in: "partition", wantErr: placement.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := placement.ParseOrder(tt.in)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("ParseOrder(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && tt.in != "" && got.String() != tt.in {
				t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
			}
		})
	}
	if s := placement.Order(7).String(); s != "Order(7)" {
		t.Errorf("Order(7).String() = %q", s)
	}
}

func TestParseSubject(t *testing.T) {
	longAgent := strings.Repeat("a", placement.MaxAgentIDLen)
	longPool := strings.Repeat("n", placement.MaxPoolNameLen)
	tests := []struct {
		name          string
		subject       string
		wantPool      string
		wantPartition int
		wantAgent     string
		wantErr       error // besides ErrInvalidSubject, which every error wraps
	}{
		{name: "ok", subject: "a2a.in.agentd.p0042.planner-1", wantPool: "agentd", wantPartition: 42, wantAgent: "planner-1"},
		{name: "highest partition", subject: "a2a.in.x.p9999.y", wantPool: "x", wantPartition: 9999, wantAgent: "y"},
		{name: "dash and underscore", subject: "a2a.in.my_pool-2.p0000.A_b-C", wantPool: "my_pool-2", wantAgent: "A_b-C"},
		{name: "longest", subject: "a2a.in." + longPool + ".p0001." + longAgent, wantPool: longPool, wantPartition: 1, wantAgent: longAgent},

		{name: "empty", subject: "", wantErr: placement.ErrInvalidSubject},
		{name: "prefix only", subject: "a2a.in", wantErr: placement.ErrInvalidSubject},
		{name: "prefix and dot", subject: "a2a.in.", wantErr: placement.ErrInvalidSubject},
		{name: "wrong prefix", subject: "a2a.out.agentd.p0042.x", wantErr: placement.ErrInvalidSubject},
		{name: "prefix as part of a token", subject: "a2a.inbox.agentd.p0042.x", wantErr: placement.ErrInvalidSubject},
		{name: "upper-case prefix", subject: "A2A.in.agentd.p0042.x", wantErr: placement.ErrInvalidSubject},
		{name: "leading dot", subject: ".a2a.in.agentd.p0042.x", wantErr: placement.ErrInvalidSubject},

		{name: "pool only", subject: "a2a.in.agentd", wantErr: placement.ErrInvalidSubject},
		{name: "no partition token", subject: "a2a.in.agentd.", wantErr: placement.ErrInvalidSubject},
		{name: "no agent", subject: "a2a.in.agentd.p0042", wantErr: placement.ErrInvalidSubject},
		{name: "empty agent", subject: "a2a.in.agentd.p0042.", wantErr: placement.ErrInvalidAgentID},

		{name: "old group form", subject: "a2a.in.g0042.planner-1", wantErr: placement.ErrInvalidSubject},
		{name: "group token", subject: "a2a.in.agentd.g0042.x", wantErr: placement.ErrInvalidSubject},
		{name: "short partition token", subject: "a2a.in.agentd.p42.x", wantErr: placement.ErrInvalidSubject},
		{name: "long partition token", subject: "a2a.in.agentd.p00042.x", wantErr: placement.ErrInvalidSubject},
		{name: "upper-case partition token", subject: "a2a.in.agentd.P0042.x", wantErr: placement.ErrInvalidSubject},
		{name: "letter in partition token", subject: "a2a.in.agentd.p00a2.x", wantErr: placement.ErrInvalidSubject},
		{name: "sign in partition token", subject: "a2a.in.agentd.p-001.x", wantErr: placement.ErrInvalidSubject},
		{name: "wildcard partition token", subject: "a2a.in.agentd.*.x", wantErr: placement.ErrInvalidSubject},

		{name: "empty pool", subject: "a2a.in..p0042.x", wantErr: placement.ErrInvalidPool},
		{name: "wildcard pool", subject: "a2a.in.*.p0042.x", wantErr: placement.ErrInvalidPool},
		{name: "bad pool character", subject: "a2a.in.agent$d.p0042.x", wantErr: placement.ErrInvalidPool},
		{name: "pool too long", subject: "a2a.in." + longPool + "n.p0042.x", wantErr: placement.ErrInvalidPool},

		{name: "dot in agent", subject: "a2a.in.agentd.p0042.a.b", wantErr: placement.ErrInvalidAgentID},
		{name: "two dots in agent", subject: "a2a.in.agentd.p0042.a..b", wantErr: placement.ErrInvalidAgentID},
		{name: "trailing dot", subject: "a2a.in.agentd.p0042.a.", wantErr: placement.ErrInvalidAgentID},
		{name: "gt wildcard agent", subject: "a2a.in.agentd.p0042.>", wantErr: placement.ErrInvalidAgentID},
		{name: "star wildcard agent", subject: "a2a.in.agentd.p0042.*", wantErr: placement.ErrInvalidAgentID},
		{name: "bad agent character", subject: "a2a.in.agentd.p0042.a b", wantErr: placement.ErrInvalidAgentID},
		{name: "agent too long", subject: "a2a.in.agentd.p0042." + longAgent + "a", wantErr: placement.ErrInvalidAgentID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, partition, agent, err := placement.ParseSubject(tt.subject)
			if !errors.Is(err, tt.wantErr) || pool != tt.wantPool || partition != tt.wantPartition || agent != tt.wantAgent {
				t.Fatalf("ParseSubject(%q) = %q, %d, %q, %v; want %q, %d, %q, %v", tt.subject,
					pool, partition, agent, err, tt.wantPool, tt.wantPartition, tt.wantAgent, tt.wantErr)
			}
			if err != nil && !errors.Is(err, placement.ErrInvalidSubject) {
				t.Errorf("error %v does not wrap ErrInvalidSubject", err)
			}
		})
	}
}

var subjectRE = regexp.MustCompile(`^a2a\.in\.agentd\.p[0-9]{4}\.[A-Za-z0-9_-]{1,128}$`)

// TestPoolSubject checks pinned subjects, their shape and the round trip
// through ParseSubject. Pinned answers: a change here sends live traffic
// to other partitions.
func TestPoolSubject(t *testing.T) {
	pinned := []struct {
		order        placement.Order
		agent, convo string
		want         string
	}{
		// OrderAgent is Groups' jump hash: planner-1 was in g0101 too.
		{placement.OrderAgent, "planner-1", "", "a2a.in.agentd.p0101.planner-1"},
		{placement.OrderAgent, "planner-1", "ctx-1", "a2a.in.agentd.p0101.planner-1"},
		{placement.OrderAgent, "echo", "", "a2a.in.agentd.p0097.echo"},
		{placement.OrderConversation, "echo", "ctx-1", "a2a.in.agentd.p0250.echo"},
		{placement.OrderConversation, "echo", "ctx-2", "a2a.in.agentd.p0059.echo"},
		{placement.OrderConversation, "worker-7", "ctx-1", "a2a.in.agentd.p0020.worker-7"},
	}
	for _, tt := range pinned {
		p := mustPool(t, "agentd", placement.DefaultGroups, tt.order)
		got, err := p.Subject(tt.agent, p.Partition(tt.agent, tt.convo))
		if err != nil || got != tt.want {
			t.Errorf("%v: Subject(%q, Partition(%q, %q)) = %q, %v; want %q", tt.order, tt.agent, tt.agent, tt.convo, got, err, tt.want)
		}
	}

	for _, order := range []placement.Order{placement.OrderAgent, placement.OrderConversation} {
		p := mustPool(t, "agentd", placement.DefaultGroups, order)
		for i, agent := range append(keys("agent-", 1000), strings.Repeat("Z", placement.MaxAgentIDLen), "-", "_") {
			part := p.Partition(agent, fmt.Sprint("ctx-", i%7))
			s, err := p.Subject(agent, part)
			if err != nil || !subjectRE.MatchString(s) {
				t.Fatalf("%v: Subject(%q, %d) = %q, %v", order, agent, part, s, err)
			}
			buf, err := p.AppendSubject([]byte("prefix:"), agent, part)
			if err != nil || string(buf) != "prefix:"+s {
				t.Fatalf("%v: AppendSubject(%q, %d) = %q, %v; want prefix:%s", order, agent, part, buf, err, s)
			}
			filter, _ := p.Filter(part)
			if !strings.HasPrefix(s, strings.TrimSuffix(filter, ">")) {
				t.Fatalf("%v: subject %q is not matched by its partition's filter %q", order, s, filter)
			}
			pool, ppart, pagent, err := placement.ParseSubject(s)
			if err != nil || pool != "agentd" || ppart != part || pagent != agent {
				t.Fatalf("ParseSubject(%q) = %q, %d, %q, %v; want agentd, %d, %q", s, pool, ppart, pagent, err, part, agent)
			}
		}
	}
}

func TestPoolSubjectInvalid(t *testing.T) {
	p := mustPool(t, "agentd", 16, placement.OrderConversation)
	tests := []struct {
		name      string
		agent     string
		partition int
		wantErr   error
	}{
		{name: "empty agent", agent: "", partition: 0, wantErr: placement.ErrInvalidAgentID},
		{name: "dot", agent: "a.b", partition: 0, wantErr: placement.ErrInvalidAgentID},
		{name: "wildcard", agent: "a*", partition: 0, wantErr: placement.ErrInvalidAgentID},
		{name: "space", agent: "sp ace", partition: 0, wantErr: placement.ErrInvalidAgentID},
		{name: "too long", agent: strings.Repeat("a", placement.MaxAgentIDLen+1), partition: 0, wantErr: placement.ErrInvalidAgentID},
		{name: "negative partition", agent: "a", partition: -1, wantErr: placement.ErrInvalidGroup},
		{name: "partition at count", agent: "a", partition: 16, wantErr: placement.ErrInvalidGroup},
		{name: "partition above MaxGroups", agent: "a", partition: placement.MaxGroups, wantErr: placement.ErrInvalidGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := p.Subject(tt.agent, tt.partition)
			if !errors.Is(err, tt.wantErr) || s != "" {
				t.Errorf("Subject(%q, %d) = %q, %v; want %v", tt.agent, tt.partition, s, err, tt.wantErr)
			}
			out, err := p.AppendSubject([]byte("keep"), tt.agent, tt.partition)
			if !errors.Is(err, tt.wantErr) || string(out) != "keep" {
				t.Errorf("AppendSubject(%q, %d) = %q, %v; want dst unchanged and %v", tt.agent, tt.partition, out, err, tt.wantErr)
			}
		})
	}
}

func TestPoolTokenFilterConsumer(t *testing.T) {
	p := mustPool(t, "agentd", placement.DefaultGroups, placement.OrderConversation)
	tests := []struct {
		partition    int
		wantToken    string
		wantFilter   string
		wantConsumer string
		wantErr      error
	}{
		{0, "p0000", "a2a.in.agentd.p0000.>", "agentd_p0000", nil},
		{7, "p0007", "a2a.in.agentd.p0007.>", "agentd_p0007", nil},
		{42, "p0042", "a2a.in.agentd.p0042.>", "agentd_p0042", nil},
		{255, "p0255", "a2a.in.agentd.p0255.>", "agentd_p0255", nil},
		{256, "", "", "", placement.ErrInvalidGroup},
		{-1, "", "", "", placement.ErrInvalidGroup},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.partition), func(t *testing.T) {
			tok, err := p.PartitionToken(tt.partition)
			if !errors.Is(err, tt.wantErr) || tok != tt.wantToken {
				t.Errorf("PartitionToken(%d) = %q, %v; want %q, %v", tt.partition, tok, err, tt.wantToken, tt.wantErr)
			}
			f, err := p.Filter(tt.partition)
			if !errors.Is(err, tt.wantErr) || f != tt.wantFilter {
				t.Errorf("Filter(%d) = %q, %v; want %q, %v", tt.partition, f, err, tt.wantFilter, tt.wantErr)
			}
			c, err := p.ConsumerName(tt.partition)
			if !errors.Is(err, tt.wantErr) || c != tt.wantConsumer {
				t.Errorf("ConsumerName(%d) = %q, %v; want %q, %v", tt.partition, c, err, tt.wantConsumer, tt.wantErr)
			}
			if err != nil {
				return
			}
			if pool, n, ok := placement.ParseConsumerName(c); !ok || pool != p.Name() || n != tt.partition {
				t.Errorf("ParseConsumerName(%q) = %q, %d, %v; want %q, %d, true", c, pool, n, ok, p.Name(), tt.partition)
			}
			if got, ok := p.ConsumerPartition(c); !ok || got != tt.partition {
				t.Errorf("ConsumerPartition(%q) = %d, %v; want %d, true", c, got, ok, tt.partition)
			}
		})
	}

	// Tokens and consumer names sort like their partitions.
	big := mustPool(t, "agentd", placement.MaxGroups, placement.OrderAgent)
	prevTok, prevName := "", ""
	for i := range placement.MaxGroups {
		tok, _ := big.PartitionToken(i)
		name, _ := big.ConsumerName(i)
		if tok <= prevTok || name <= prevName {
			t.Fatalf("partition %d: token %q, name %q sort before %q, %q", i, tok, name, prevTok, prevName)
		}
		prevTok, prevName = tok, name
	}
	if prevTok != "p9999" {
		t.Errorf("last token %q, want p9999", prevTok)
	}
}

func TestPoolConsumerPartition(t *testing.T) {
	p := mustPool(t, "agentd", 16, placement.OrderConversation)
	tests := []struct {
		name   string
		in     string
		want   int
		wantOK bool
	}{
		{"first", "agentd_p0000", 0, true},
		{"in range", "agentd_p0015", 15, true},
		{"from another count", "agentd_p0300", 300, true},
		{"another pool with the prefix", "agentd_prod_p0000", 0, false},
		{"another pool ending with the name", "my-agentd_p0001", 0, false},
		{"prefix only", "agentd_p", 0, false},
		{"short token", "agentd_p001", 0, false},
		{"long token", "agentd_p00001", 0, false},
		{"group token", "agentd_g0001", 0, false},
		{"no separator", "agentdp0001", 0, false},
		{"old group consumer", "g0001", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.ConsumerPartition(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ConsumerPartition(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	var zero placement.Pool
	if got, ok := zero.ConsumerPartition("_p0001"); ok {
		t.Errorf("zero Pool: ConsumerPartition(_p0001) = %d, true; want false", got)
	}
}

// TestPartition checks the key → partition contract for both orders: in
// range, the same on independent instances (as on different hosts), and
// the documented hash, which every sender and member must compute alike.
func TestPartition(t *testing.T) {
	agents := keys("agent-", 300)
	convos := keys("ctx-", 5)
	for _, order := range []placement.Order{placement.OrderAgent, placement.OrderConversation} {
		for _, n := range []int{1, 2, 7, placement.DefaultGroups, placement.MaxGroups} {
			a := mustPool(t, "agentd", n, order)
			b := mustPool(t, "agentd", n, order)
			for _, agent := range agents {
				for _, convo := range convos {
					got := a.Partition(agent, convo)
					if got < 0 || got >= n {
						t.Fatalf("%v/%d: Partition(%q, %q) = %d, out of 0..%d", order, n, agent, convo, got, n-1)
					}
					if again := b.Partition(agent, convo); again != got {
						t.Fatalf("%v/%d: Partition(%q, %q) = %d and %d on two instances", order, n, agent, convo, got, again)
					}
					key := agent
					if order == placement.OrderConversation {
						key = agent + "\x00" + convo
					}
					if want := placement.JumpHash(xxhash.Sum64String(key), n); got != want {
						t.Fatalf("%v/%d: Partition(%q, %q) = %d, documented hash gives %d", order, n, agent, convo, got, want)
					}
				}
			}
		}
	}
	// The pool name plays no part: two pools place a key alike.
	a := mustPool(t, "agentd", placement.DefaultGroups, placement.OrderConversation)
	b := mustPool(t, "other", placement.DefaultGroups, placement.OrderConversation)
	for _, agent := range agents {
		if pa, pb := a.Partition(agent, "c"), b.Partition(agent, "c"); pa != pb {
			t.Fatalf("Partition(%q, c) = %d in agentd, %d in other", agent, pa, pb)
		}
	}
}

func TestPartitionOrderAgentIgnoresConversation(t *testing.T) {
	p := mustPool(t, "agentd", placement.DefaultGroups, placement.OrderAgent)
	g, err := placement.NewGroups(placement.DefaultGroups)
	if err != nil {
		t.Fatal(err)
	}
	for _, agent := range keys("agent-", 500) {
		want := p.Partition(agent, "")
		for _, convo := range []string{"ctx-1", "ctx-2", "sender-9", "\x00", strings.Repeat("c", 200)} {
			if got := p.Partition(agent, convo); got != want {
				t.Fatalf("OrderAgent: Partition(%q, %q) = %d, Partition(%q, \"\") = %d", agent, convo, got, agent, want)
			}
		}
		// OrderAgent places agents as Groups' default scheme did.
		if got := g.Group(agent); got != want {
			t.Fatalf("OrderAgent: Partition(%q) = %d, Groups.Group = %d", agent, want, got)
		}
	}
}

// TestPartitionOrderConversationSpreads checks that a busy agent's
// conversations scale out: 64 conversations of one agent over 256
// partitions should hit about 57 distinct partitions (256 × (1 − (255/256)^64)).
func TestPartitionOrderConversationSpreads(t *testing.T) {
	p := mustPool(t, "agentd", 256, placement.OrderConversation)
	convos := keys("ctx-", 64)
	for _, agent := range []string{"planner-1", "echo", "agent-0", "x"} {
		seen := map[int]bool{}
		for _, convo := range convos {
			seen[p.Partition(agent, convo)] = true
		}
		t.Logf("%s: 64 conversations over %d of 256 partitions", agent, len(seen))
		if len(seen) < 40 {
			t.Errorf("%s: 64 conversations over %d partitions, want at least 40", agent, len(seen))
		}
	}
}

// TestPartitionResize checks movement when a pool grows from n to n+1
// partitions: only keys that land in the new partition move, about 1/(n+1)
// of them. (A pool's count is fixed once declared; this is the property
// that makes a deliberate migration cheap.)
func TestPartitionResize(t *testing.T) {
	// 20 000 distinct keys in each order: 20 000 agents for OrderAgent,
	// 200 agents with 100 conversations each for OrderConversation.
	type key struct{ agent, convo string }
	var byAgent, byConvo []key
	for _, agent := range keys("agent-", 20_000) {
		byAgent = append(byAgent, key{agent, ""})
	}
	for _, agent := range keys("agent-", 200) {
		for _, convo := range keys("ctx-", 100) {
			byConvo = append(byConvo, key{agent, convo})
		}
	}
	for _, tc := range []struct {
		order placement.Order
		keys  []key
	}{{placement.OrderAgent, byAgent}, {placement.OrderConversation, byConvo}} {
		for _, n := range []int{1, 10, 64, 255} {
			t.Run(fmt.Sprintf("%v/%d-%d", tc.order, n, n+1), func(t *testing.T) {
				a := mustPool(t, "agentd", n, tc.order)
				b := mustPool(t, "agentd", n+1, tc.order)
				moved := 0
				for _, k := range tc.keys {
					pa, pb := a.Partition(k.agent, k.convo), b.Partition(k.agent, k.convo)
					if pa == pb {
						continue
					}
					moved++
					if pb != n {
						t.Fatalf("%v moved %d → %d, not into the new partition %d", k, pa, pb, n)
					}
				}
				total := len(tc.keys)
				frac, ideal := float64(moved)/float64(total), 1/float64(n+1)
				t.Logf("%v %d → %d partitions: moved %.4f of %d keys (ideal %.4f)", tc.order, n, n+1, frac, total, ideal)
				if frac < ideal*0.7 || frac > ideal*1.3 {
					t.Errorf("moved %.4f, want about %.4f", frac, ideal)
				}
			})
		}
	}
}

func TestPoolAllocs(t *testing.T) {
	for _, order := range []placement.Order{placement.OrderAgent, placement.OrderConversation} {
		p := mustPool(t, "agentd", placement.DefaultGroups, order)
		buf := make([]byte, 0, 256)
		if n := testing.AllocsPerRun(1000, func() { _ = p.Partition("planner-1", "ctx-42") }); n != 0 {
			t.Errorf("%v: Partition: %v allocs, want 0", order, n)
		}
		if n := testing.AllocsPerRun(1000, func() { buf, _ = p.AppendSubject(buf[:0], "planner-1", 42) }); n != 0 {
			t.Errorf("%v: AppendSubject: %v allocs, want 0", order, n)
		}
		if n := testing.AllocsPerRun(1000, func() { _, _ = p.Subject("planner-1", 42) }); n != 1 {
			t.Errorf("%v: Subject: %v allocs, want 1", order, n)
		}
		if n := testing.AllocsPerRun(1000, func() { _, _ = p.ConsumerPartition("agentd_p0042") }); n != 0 {
			t.Errorf("%v: ConsumerPartition: %v allocs, want 0", order, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _, _, _, _ = placement.ParseSubject("a2a.in.agentd.p0042.planner-1") }); n != 0 {
		t.Errorf("ParseSubject: %v allocs, want 0", n)
	}
}

// FuzzParseSubject checks that ParseSubject never panics, that its errors
// wrap ErrInvalidSubject, and that whatever it accepts AppendSubject
// rebuilds exactly, in a pool of MaxGroups partitions so that every
// partition token is in range.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"a2a.in.agentd.p0042.planner-1", "a2a.in.x.p9999.y", "a2a.in.my_pool-2.p0000.A_b-C",
		"", "a2a.in", "a2a.in.", "a2a.in..p0001.x", "a2a.out.agentd.p0042.x",
		"a2a.in.agentd", "a2a.in.agentd.p0042", "a2a.in.agentd.p0042.",
		"a2a.in.g0042.planner-1", "a2a.in.agentd.p42.x", "a2a.in.agentd.p00a2.x",
		"a2a.in.agentd.p0042.a.b", "a2a.in.agentd.p0042.>", "a2a.in.*.p0001.x", "a2a.in.agentd.p0001.\xff",
		"a2a.in." + strings.Repeat("n", placement.MaxPoolNameLen) + ".p0001." + strings.Repeat("a", placement.MaxAgentIDLen),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		pool, partition, agent, err := placement.ParseSubject(subject)
		if err != nil {
			if !errors.Is(err, placement.ErrInvalidSubject) {
				t.Fatalf("ParseSubject(%q) error %v does not wrap ErrInvalidSubject", subject, err)
			}
			if pool != "" || partition != 0 || agent != "" {
				t.Fatalf("ParseSubject(%q) = %q, %d, %q with error %v", subject, pool, partition, agent, err)
			}
			return
		}
		if partition < 0 || partition >= placement.MaxGroups || placement.ValidateAgentID(agent) != nil {
			t.Fatalf("ParseSubject(%q) = %q, %d, %q", subject, pool, partition, agent)
		}
		p, err := placement.NewPool(pool, placement.MaxGroups, placement.OrderConversation)
		if err != nil {
			t.Fatalf("ParseSubject(%q) accepted pool %q, NewPool refuses it: %v", subject, pool, err)
		}
		rebuilt, err := p.AppendSubject(nil, agent, partition)
		if err != nil || string(rebuilt) != subject {
			t.Fatalf("ParseSubject(%q) = %q, %d, %q; rebuilt %q, %v", subject, pool, partition, agent, rebuilt, err)
		}
	})
}

func ExamplePool() {
	// Every sender and member that knows the pool's name, partition count
	// and order computes the same placement, without talking.
	pool, err := placement.NewPool("agentd", placement.DefaultGroups, placement.OrderConversation)
	if err != nil {
		panic(err)
	}

	// Key → partition: envelopes of one conversation with planner-1 keep
	// their order; its other conversations may go to other partitions.
	partition := pool.Partition("planner-1", "ctx-1")
	subject, _ := pool.Subject("planner-1", partition)
	consumer, _ := pool.ConsumerName(partition)
	fmt.Println(subject)
	fmt.Println(consumer)

	// Partition → member: Assign over the pool's live members.
	owners, err := placement.Assign(pool.Partitions(), []string{"agentd-a", "agentd-b", "agentd-c"})
	if err != nil {
		panic(err)
	}
	fmt.Println(consumer, "is pulled by", owners.Owner(partition))

	_, err = placement.NewPool("agent.d", 16, placement.OrderAgent)
	fmt.Println(errors.Is(err, placement.ErrInvalidPool))
	// Output:
	// a2a.in.agentd.p0029.planner-1
	// agentd_p0029
	// agentd_p0029 is pulled by agentd-a
	// true
}
