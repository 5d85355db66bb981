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
// Subject, AppendSubject and ParseSubject.
func FuzzValidateAgentID(f *testing.F) {
	for _, s := range []string{"", "a", "planner-1", "a.b", "*", ">", "a b", "é", "\xff", "g0001",
		strings.Repeat("z", MaxAgentIDLen), strings.Repeat("z", MaxAgentIDLen+1)} {
		f.Add(s)
	}
	jump, err := NewGroups(DefaultGroups)
	if err != nil {
		f.Fatal(err)
	}
	ring, err := NewGroups(7, WithScheme(SchemeRing), WithGroupVirtualNodes(10))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		verr := ValidateAgentID(id)
		if verr != nil && !errors.Is(verr, ErrInvalidAgentID) {
			t.Fatalf("ValidateAgentID(%q) = %v, does not wrap ErrInvalidAgentID", id, verr)
		}
		for _, g := range []*Groups{jump, ring} {
			group := g.Group(id)
			if group < 0 || group >= g.Count() {
				t.Fatalf("Group(%q) = %d, out of 0..%d", id, group, g.Count()-1)
			}
			subj, err := g.Subject(id)
			buf, aerr := g.AppendSubject([]byte("x"), id)
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
			if last := subj[strings.LastIndexByte(subj, '.')+1:]; last != id {
				t.Fatalf("Subject(%q) = %q, last token %q", id, subj, last)
			}
			pg, pid, err := ParseSubject(subj)
			if err != nil || pg != group || pid != id {
				t.Fatalf("ParseSubject(%q) = %d, %q, %v; want %d, %q", subj, pg, pid, err, group, id)
			}
		}
	})
}
