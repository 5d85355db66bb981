// Package recent is a bounded map of what was seen lately: two
// generations of at most n keys each, the older dropped whole when the
// newer fills. A key looked up or stored lately is kept; memory stays
// bounded without a clock or a list per entry.
package recent
