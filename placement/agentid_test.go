package placement

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateAgentID(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr error
		wantMsg string // a part of the error message
	}{
		{name: "letters", id: "planner"},
		{name: "mixed", id: "Planner-01_eu"},
		{name: "one byte", id: "a"},
		{name: "digits only", id: "42"},
		{name: "dash and underscore only", id: "-_"},
		{name: "max length", id: strings.Repeat("x", MaxAgentIDLen)},
		{name: "empty", id: "", wantErr: ErrInvalidAgentID, wantMsg: "empty"},
		{name: "too long", id: strings.Repeat("x", MaxAgentIDLen+1), wantErr: ErrInvalidAgentID, wantMsg: "129 bytes long, limit 128"},
		{name: "dot", id: "a.b", wantErr: ErrInvalidAgentID, wantMsg: `character '.' (U+002E) at offset 1 (a dot separates subject tokens)`},
		{name: "star", id: "*", wantErr: ErrInvalidAgentID, wantMsg: `character '*' (U+002A) at offset 0 (a subject wildcard)`},
		{name: "gt", id: "ab>", wantErr: ErrInvalidAgentID, wantMsg: `character '>' (U+003E) at offset 2`},
		{name: "space", id: "my agent", wantErr: ErrInvalidAgentID, wantMsg: `character ' ' (U+0020) at offset 2`},
		{name: "tab", id: "a\tb", wantErr: ErrInvalidAgentID, wantMsg: `character '\t' (U+0009) at offset 1`},
		{name: "nul", id: "a\x00", wantErr: ErrInvalidAgentID, wantMsg: `(U+0000) at offset 1`},
		{name: "non-ASCII letter", id: "agé", wantErr: ErrInvalidAgentID, wantMsg: `character 'é' (U+00E9) at offset 2`},
		{name: "invalid UTF-8", id: "ab\xff", wantErr: ErrInvalidAgentID, wantMsg: "byte 0xff at offset 2 is not valid UTF-8"},
		{name: "slash", id: "a/b", wantErr: ErrInvalidAgentID, wantMsg: `'/'`},
		{name: "first bad of many", id: "ok$bad.", wantErr: ErrInvalidAgentID, wantMsg: `'$' (U+0024) at offset 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAgentID(tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateAgentID(%q) = %v, want %v", tt.id, err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), "placement: invalid agent ID") || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ValidateAgentID(%q) = %q, want it to contain %q", tt.id, err, tt.wantMsg)
			}
		})
	}
}

func TestValidateAgentIDAllocs(t *testing.T) {
	for _, id := range []string{"planner-1", ""} {
		if n := testing.AllocsPerRun(100, func() { _ = ValidateAgentID(id) }); n != 0 {
			t.Errorf("ValidateAgentID(%q): %v allocs, want 0", id, n)
		}
	}
}

// FuzzValidateAgentID checks that validation and the subject builders never
// panic, agree with each other, and that a valid ID round-trips through
// Pool.Subject, Pool.AppendSubject and ParseSubject.
func FuzzValidateAgentID(f *testing.F) {
	for _, s := range []string{"", "a", "planner-1", "a.b", "*", ">", "a b", "é", "\xff", "p0001",
		strings.Repeat("z", MaxAgentIDLen), strings.Repeat("z", MaxAgentIDLen+1)} {
		f.Add(s)
	}
	byAgent, err := NewPool("agentd", DefaultGroups, OrderAgent)
	if err != nil {
		f.Fatal(err)
	}
	byConversation, err := NewPool(strings.Repeat("P", MaxPoolNameLen), 7, OrderConversation)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		verr := ValidateAgentID(id)
		if verr != nil && !errors.Is(verr, ErrInvalidAgentID) {
			t.Fatalf("ValidateAgentID(%q) = %v, does not wrap ErrInvalidAgentID", id, verr)
		}
		for _, p := range []*Pool{byAgent, byConversation} {
			part := p.Partition(id, "ctx-1")
			if part < 0 || part >= p.Partitions() {
				t.Fatalf("Partition(%q) = %d, out of 0..%d", id, part, p.Partitions()-1)
			}
			subj, err := p.Subject(id, part)
			buf, aerr := p.AppendSubject([]byte("x"), id, part)
			if verr != nil {
				if !errors.Is(err, ErrInvalidAgentID) || !errors.Is(aerr, ErrInvalidAgentID) {
					t.Fatalf("Subject(%q) = %v, AppendSubject: %v; want ErrInvalidAgentID", id, err, aerr)
				}
				if subj != "" || string(buf) != "x" {
					t.Fatalf("invalid ID %q: Subject = %q, AppendSubject wrote %q", id, subj, buf)
				}
				continue
			}
			if err != nil || aerr != nil {
				t.Fatalf("valid ID %q: Subject error %v, AppendSubject error %v", id, err, aerr)
			}
			if string(buf[1:]) != subj {
				t.Fatalf("AppendSubject(%q) = %q, Subject = %q", id, buf[1:], subj)
			}
			if len(subj) > maxSubjectLen {
				t.Fatalf("Subject(%q) = %q, %d bytes, longer than maxSubjectLen %d", id, subj, len(subj), maxSubjectLen)
			}
			pool, ppart, pid, err := ParseSubject(subj)
			if err != nil || pool != p.Name() || ppart != part || pid != id {
				t.Fatalf("ParseSubject(%q) = %q, %d, %q, %v; want %q, %d, %q", subj, pool, ppart, pid, err, p.Name(), part, id)
			}
		}
	})
}

// TestMaxSubjectLen checks the longest subject that MaxAgentIDLen's doc
// promises: the longest pool name and agent ID in the highest partition.
func TestMaxSubjectLen(t *testing.T) {
	p, err := NewPool(strings.Repeat("p", MaxPoolNameLen), MaxGroups, OrderAgent)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Subject(strings.Repeat("a", MaxAgentIDLen), MaxGroups-1)
	if err != nil || len(s) != maxSubjectLen || maxSubjectLen != 206 {
		t.Fatalf("longest subject: %d bytes, %v; want maxSubjectLen = 206", len(s), err)
	}
}
