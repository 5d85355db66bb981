package placement

import (
	"errors"
	"fmt"
	"testing"
)

func TestNewGroups(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		opts    []GroupsOption
		wantErr error
		scheme  Scheme
	}{
		{name: "default", n: DefaultGroups, scheme: SchemeJump},
		{name: "one group", n: 1},
		{name: "max groups", n: MaxGroups},
		{name: "ring", n: 64, opts: []GroupsOption{WithScheme(SchemeRing)}, scheme: SchemeRing},
		{name: "ring few vnodes", n: 64, opts: []GroupsOption{WithScheme(SchemeRing), WithGroupVirtualNodes(3)}, scheme: SchemeRing},
		{name: "jump ignores vnodes", n: 64, opts: []GroupsOption{WithGroupVirtualNodes(3)}},
		{name: "zero groups", n: 0, wantErr: ErrInvalidOption},
		{name: "negative groups", n: -1, wantErr: ErrInvalidOption},
		{name: "too many groups", n: MaxGroups + 1, wantErr: ErrInvalidOption},
		{name: "bad scheme", n: 8, opts: []GroupsOption{WithScheme(Scheme(9))}, wantErr: ErrInvalidOption},
		{name: "zero vnodes", n: 8, opts: []GroupsOption{WithGroupVirtualNodes(0)}, wantErr: ErrInvalidOption},
		{name: "too many vnodes", n: 8, opts: []GroupsOption{WithGroupVirtualNodes(MaxVirtualNodes + 1)}, wantErr: ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGroups(tt.n, tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewGroups(%d) error %v, want %v", tt.n, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if g.Count() != tt.n || g.Scheme() != tt.scheme {
				t.Errorf("Count() = %d, Scheme() = %v; want %d, %v", g.Count(), g.Scheme(), tt.n, tt.scheme)
			}
		})
	}
}

func TestZeroGroups(t *testing.T) {
	var g Groups
	if got := g.Group("a"); got != -1 {
		t.Errorf("zero Groups: Group = %d, want -1", got)
	}
	if tok, err := g.GroupToken(0); !errors.Is(err, ErrInvalidGroup) || tok != "" {
		t.Errorf("zero Groups: GroupToken(0) = %q, %v; want ErrInvalidGroup", tok, err)
	}
}

func TestParseScheme(t *testing.T) {
	tests := []struct {
		in      string
		want    Scheme
		wantErr error
	}{
		{"jump", SchemeJump, nil},
		{"ring", SchemeRing, nil},
		{"", 0, ErrInvalidOption},
		{"Jump", 0, ErrInvalidOption},
		{"rendezvous", 0, ErrInvalidOption},
	}
	for _, tt := range tests {
		got, err := ParseScheme(tt.in)
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("ParseScheme(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
	if s := Scheme(7).String(); s != "Scheme(7)" {
		t.Errorf("Scheme(7).String() = %q", s)
	}
}

func TestGroupToken(t *testing.T) {
	g := mustGroups(t, DefaultGroups)
	tests := []struct {
		group     int
		wantToken string
		wantErr   error
	}{
		{0, "g0000", nil},
		{7, "g0007", nil},
		{42, "g0042", nil},
		{255, "g0255", nil},
		{256, "", ErrInvalidGroup},
		{-1, "", ErrInvalidGroup},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.group), func(t *testing.T) {
			tok, err := g.GroupToken(tt.group)
			if !errors.Is(err, tt.wantErr) || tok != tt.wantToken {
				t.Errorf("GroupToken(%d) = %q, %v; want %q, %v", tt.group, tok, err, tt.wantToken, tt.wantErr)
			}
		})
	}
	big := mustGroups(t, MaxGroups)
	if tok, err := big.GroupToken(MaxGroups - 1); err != nil || tok != "g9999" {
		t.Errorf("GroupToken(%d) = %q, %v; want g9999", MaxGroups-1, tok, err)
	}
	// Tokens sort like their numbers.
	prev := ""
	for i := range 1000 {
		tok, _ := big.GroupToken(i)
		if tok <= prev {
			t.Fatalf("token %q of group %d sorts before %q", tok, i, prev)
		}
		prev = tok
	}
}

func TestGroupsAllocs(t *testing.T) {
	for _, sc := range schemes {
		g := mustGroups(t, DefaultGroups, sc.opts...)
		if n := testing.AllocsPerRun(1000, func() { _ = g.Group("planner-1") }); n != 0 {
			t.Errorf("%s: Group: %v allocs, want 0", sc.name, n)
		}
	}
}

// TestGroupsDeterminism checks that independent instances, as on different
// hosts, give the same groups.
func TestGroupsDeterminism(t *testing.T) {
	ids := agents(20_000)
	for _, sc := range schemes {
		a := mustGroups(t, DefaultGroups, sc.opts...)
		b := mustGroups(t, DefaultGroups, sc.opts...)
		for _, id := range ids {
			if ga, gb := a.Group(id), b.Group(id); ga != gb {
				t.Fatalf("%s: Group(%q) = %d and %d on two instances", sc.name, id, ga, gb)
			}
		}
	}
	// SchemeRing is the documented ring over the group tokens.
	g := mustGroups(t, 16, WithScheme(SchemeRing), WithGroupVirtualNodes(20))
	tokens := make([]string, 16)
	for i := range tokens {
		tokens[i], _ = g.GroupToken(i)
	}
	for _, id := range ids[:300] {
		want := referenceOwner(tokens, 20, id)
		if got := tokens[g.Group(id)]; got != want {
			t.Fatalf("ring Group(%q) = %s, reference %s", id, got, want)
		}
	}
	// SchemeJump is JumpHashString.
	j := mustGroups(t, 16)
	for _, id := range ids[:300] {
		if got, want := j.Group(id), JumpHashString(id, 16); got != want {
			t.Fatalf("jump Group(%q) = %d, JumpHashString = %d", id, got, want)
		}
	}
}

// TestGroupsResize checks movement when the group count grows or shrinks at
// the end: only agents of the new or removed group move, about 1/n of them.
func TestGroupsResize(t *testing.T) {
	ids := agents(100_000)
	for _, sc := range schemes {
		for _, tc := range []struct{ from, to int }{{256, 257}, {256, 255}, {64, 65}, {10, 11}} {
			t.Run(fmt.Sprintf("%s/%d-%d", sc.name, tc.from, tc.to), func(t *testing.T) {
				a := mustGroups(t, tc.from, sc.opts...)
				b := mustGroups(t, tc.to, sc.opts...)
				changed := max(tc.from, tc.to) - 1 // the group added or removed
				moved := 0
				for _, id := range ids {
					ga, gb := a.Group(id), b.Group(id)
					if ga == gb {
						continue
					}
					moved++
					if (tc.to > tc.from && gb != changed) || (tc.to < tc.from && ga != changed) {
						t.Fatalf("agent %q moved %d → %d, not to or from group %d", id, ga, gb, changed)
					}
				}
				frac, ideal := float64(moved)/float64(len(ids)), 1/float64(max(tc.from, tc.to))
				t.Logf("%s %d → %d groups: moved %.4f of agents (ideal %.4f)", sc.name, tc.from, tc.to, frac, ideal)
				if frac < ideal/2 || frac > ideal*1.5 {
					t.Errorf("moved %.4f, want about %.4f", frac, ideal)
				}
			})
		}
	}
}
