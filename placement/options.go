package placement

import "fmt"

// Defaults and limits.
const (
	// DefaultVirtualNodes is the number of points each member has on a
	// ring. With 150 points the share of the ring a member owns has a
	// standard deviation of about 8% of the mean (1/sqrt(150)).
	DefaultVirtualNodes = 150

	// MaxVirtualNodes bounds the virtual nodes per member, and with them the
	// memory of a ring: 12 bytes per point.
	MaxVirtualNodes = 1024

	// DefaultGroups is the default number of consumer groups. It keeps load
	// balanced over tens of consumers: 256 groups over 10 consumers can be
	// as close as 26/25.6 = 1.02 times the mean, where 64 groups cannot do
	// better than 7/6.4 = 1.09.
	DefaultGroups = 256

	// MaxGroups is the largest group count: group tokens have four decimal
	// digits, g0000 to g9999.
	MaxGroups = 10000
)

// RingOption configures NewRing.
type RingOption func(*ringOptions) error

type ringOptions struct {
	vnodes int
}

// WithVirtualNodes sets the number of points each member has on the ring,
// 1..MaxVirtualNodes (default DefaultVirtualNodes). More points balance
// better and cost memory and rebuild time; lookups stay O(log P).
func WithVirtualNodes(n int) RingOption {
	return func(o *ringOptions) error {
		if err := checkVirtualNodes(n); err != nil {
			return err
		}
		o.vnodes = n
		return nil
	}
}

// GroupsOption configures NewGroups.
type GroupsOption func(*groupsOptions) error

type groupsOptions struct {
	scheme Scheme
	vnodes int
}

// WithScheme sets how agents are mapped to groups (default SchemeJump).
// Every sender and consumer of a bus must use the same scheme and group
// count.
func WithScheme(s Scheme) GroupsOption {
	return func(o *groupsOptions) error {
		if s != SchemeJump && s != SchemeRing {
			return fmt.Errorf("%w: %v", ErrInvalidOption, s)
		}
		o.scheme = s
		return nil
	}
}

// WithGroupVirtualNodes sets the points per group of SchemeRing,
// 1..MaxVirtualNodes (default DefaultVirtualNodes). SchemeJump ignores it.
func WithGroupVirtualNodes(n int) GroupsOption {
	return func(o *groupsOptions) error {
		if err := checkVirtualNodes(n); err != nil {
			return err
		}
		o.vnodes = n
		return nil
	}
}

func checkVirtualNodes(n int) error {
	if n < 1 || n > MaxVirtualNodes {
		return fmt.Errorf("%w: %d virtual nodes, want 1..%d", ErrInvalidOption, n, MaxVirtualNodes)
	}
	return nil
}
