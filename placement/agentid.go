package placement

import (
	"fmt"
	"unicode/utf8"
)

// MaxAgentIDLen is the longest agent ID, in bytes. 128 leaves room for a
// UUID, a host name and a role in one ID while keeping subjects short: the
// longest subject, a2a.in.<pool>.<partition token>.<agent ID> with a pool
// name of MaxPoolNameLen bytes, is 7 + 64 + 7 + 128 = 206 bytes.
const MaxAgentIDLen = 128

// idByte[c] is true for the bytes allowed in an agent ID.
var idByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['-'] = true
	t['_'] = true
	return t
}()

// ValidateAgentID reports whether id can be used as an agent ID: one NATS
// subject token of 1 to MaxAgentIDLen bytes, each an ASCII letter, an ASCII
// digit, '-' or '_'. IDs are case-sensitive. Dots, wildcards ('*', '>'),
// spaces, control characters and non-ASCII letters are rejected.
//
// The error wraps ErrInvalidAgentID and names the problem: empty, too long
// (with the length), or the first offending character and its byte offset.
// A valid ID costs no allocation.
func ValidateAgentID(id string) error {
	if len(id) == 0 {
		return errEmptyAgentID
	}
	return checkToken(id, ErrInvalidAgentID)
}

// checkToken applies the agent ID rule to id, a name of the kind that
// sentinel describes (an agent ID, a pool name or a member of an
// Assignment), and
// returns an error wrapping sentinel that names the problem.
func checkToken(id string, sentinel error) error {
	if len(id) == 0 {
		return fmt.Errorf("%w: empty", sentinel)
	}
	if len(id) > MaxAgentIDLen {
		return fmt.Errorf("%w %q...: %d bytes long, limit %d",
			sentinel, id[:24], len(id), MaxAgentIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idByte[id[i]] {
			return badTokenChar(id, i, sentinel)
		}
	}
	return nil
}

// badTokenChar describes the character of id at byte offset i.
func badTokenChar(id string, i int, sentinel error) error {
	const allowed = "allowed are ASCII letters, digits, '-' and '_'"
	r, size := utf8.DecodeRuneInString(id[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Errorf("%w %q: byte 0x%02x at offset %d is not valid UTF-8; %s",
			sentinel, id, id[i], i, allowed)
	}
	var hint string
	switch r {
	case '.':
		hint = " (a dot separates subject tokens)"
	case '*', '>':
		hint = " (a subject wildcard)"
	}
	return fmt.Errorf("%w %q: character %q (%U) at offset %d%s; %s",
		sentinel, id, r, r, i, hint, allowed)
}
