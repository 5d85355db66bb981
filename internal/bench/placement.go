package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a2abus/a2abus/placement"
	"github.com/synadia-io/orbit.go/pcgroups"
)

// PlacementConfig sizes the placement scenario. The zero value is the
// scenario of `agentd bench placement`.
type PlacementConfig struct {
	Agents     int     // agent IDs agent-0, agent-1, ... (default 100 000)
	Groups     int     // consumer groups (default placement.DefaultGroups)
	Consumers  int     // consumers before one more joins (default 10)
	LoadFactor float64 // of placement.Assign (default placement.DefaultLoadFactor)
	// LookupConsumers is the consumer count of the lookup timing
	// (default 100).
	LookupConsumers int
	// Lookups is how many agent → group → consumer lookups the timing runs
	// (default 1 000 000).
	Lookups int
}

func (c PlacementConfig) withDefaults() PlacementConfig {
	if c.Agents == 0 {
		c.Agents = 100_000
	}
	if c.Groups == 0 {
		c.Groups = placement.DefaultGroups
	}
	if c.Consumers == 0 {
		c.Consumers = 10
	}
	if c.LoadFactor == 0 {
		c.LoadFactor = placement.DefaultLoadFactor
	}
	if c.LookupConsumers == 0 {
		c.LookupConsumers = 100
	}
	if c.Lookups == 0 {
		c.Lookups = 1_000_000
	}
	return c
}

// Validate reports the first setting out of range.
func (c PlacementConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Agents < 1 || c.Agents > 10_000_000:
		return fmt.Errorf("bench: agent count %d out of range 1..10 000 000", c.Agents)
	case c.Groups < 2 || c.Groups > placement.MaxGroups:
		return fmt.Errorf("bench: group count %d out of range 2..%d", c.Groups, placement.MaxGroups)
	case c.Consumers < 1 || c.Consumers >= c.Groups:
		// pcgroups has as many partitions as its most members.
		return fmt.Errorf("bench: consumer count %d out of range 1..%d (fewer than the groups)", c.Consumers, c.Groups-1)
	case c.LookupConsumers < 1 || c.LookupConsumers > 100_000:
		return fmt.Errorf("bench: lookup consumer count %d out of range 1..100 000", c.LookupConsumers)
	case c.Lookups < 1:
		return fmt.Errorf("bench: lookup count %d must be positive", c.Lookups)
	case !(c.LoadFactor >= 1) || math.IsInf(c.LoadFactor, 1): // !(>= 1) also catches NaN
		return fmt.Errorf("bench: load factor %v, want a finite number >= 1", c.LoadFactor)
	}
	return nil
}

// PlacementResult is the placement scenario's report: agents → groups by
// placement.Groups, groups → consumers by placement.Assign, and as the
// anchor the same groups distributed by orbit.go pcgroups' balanced
// distribution of partitions over members.
type PlacementResult struct {
	Agents     int     `json:"agents"`
	Groups     int     `json:"groups"`
	Consumers  int     `json:"consumers"`
	LoadFactor float64 `json:"load_factor"`

	// LookupNs is the time of one agent → group → consumer lookup
	// (Groups.Group, then Assignment.Owner) over LookupConsumers
	// consumers.
	LookupNs        float64 `json:"lookup_ns"`
	LookupConsumers int     `json:"lookup_consumers"`

	// MaxOverMean is the fullest consumer's agents over the mean, at
	// Consumers consumers; MaxOverMeanAfter the same once one more joined.
	MaxOverMean      float64 `json:"max_over_mean"`
	MaxOverMeanAfter float64 `json:"max_over_mean_after"`
	// MovedFraction is the share of agents whose consumer changes when one
	// more consumer joins; IdealMovedFraction is 1/(Consumers+1), the least
	// any assignment can move; MovedOverIdeal their ratio.
	MovedFraction      float64 `json:"moved_fraction"`
	IdealMovedFraction float64 `json:"ideal_moved_fraction"`
	MovedOverIdeal     float64 `json:"moved_over_ideal"`

	// The same figures for pcgroups' balanced distribution of the same
	// groups, as its partitions, over the same consumers.
	PCGroupsMovedFraction float64 `json:"pcgroups_moved_fraction"`
	PCGroupsMaxOverMean   float64 `json:"pcgroups_max_over_mean"`
}

// Placement measures how agents spread over consumers and how many move
// when a consumer joins, for a2abus (jump-hash groups, bounded-load
// assignment of groups to consumers) and for pcgroups' balanced
// distribution, and times the lookup every received message costs. It needs
// no server.
func Placement(ctx context.Context, cfg PlacementConfig) (PlacementResult, error) {
	if err := cfg.Validate(); err != nil {
		return PlacementResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return PlacementResult{}, err
	}
	c := cfg.withDefaults()
	res := PlacementResult{
		Agents: c.Agents, Groups: c.Groups, Consumers: c.Consumers, LoadFactor: c.LoadFactor,
		LookupConsumers:    c.LookupConsumers,
		IdealMovedFraction: 1 / float64(c.Consumers+1),
	}
	groups, err := placement.NewGroups(c.Groups)
	if err != nil {
		return res, err
	}
	ids := make([]string, c.Agents)
	perGroup := make([]int, c.Groups)
	for i := range ids {
		ids[i] = "agent-" + strconv.Itoa(i)
		perGroup[groups.Group(ids[i])]++
	}
	before, after := consumerNames(c.Consumers), consumerNames(c.Consumers+1)

	// a2abus.
	assign := func(members []string) ([]string, error) {
		a, err := placement.Assign(c.Groups, members, placement.WithLoadFactor(c.LoadFactor))
		if err != nil {
			return nil, err
		}
		owners := make([]string, c.Groups)
		for g := range owners {
			owners[g] = a.Owner(g)
		}
		return owners, nil
	}
	if res.MaxOverMean, res.MaxOverMeanAfter, res.MovedFraction, err = membershipChange(assign, perGroup, before, after); err != nil {
		return res, err
	}
	res.MovedOverIdeal = res.MovedFraction / res.IdealMovedFraction
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The anchor: pcgroups with the groups as its partitions.
	distribute := func(members []string) ([]string, error) {
		return pcgroupsOwners(members, c.Groups)
	}
	if res.PCGroupsMaxOverMean, _, res.PCGroupsMovedFraction, err = membershipChange(distribute, perGroup, before, after); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// The lookup.
	a, err := placement.Assign(c.Groups, consumerNames(c.LookupConsumers), placement.WithLoadFactor(c.LoadFactor))
	if err != nil {
		return res, err
	}
	res.LookupNs, err = timeLookups(ctx, groups, a, ids, c.Lookups)
	return res, err
}

// consumerNames returns consumer-0 .. consumer-(n-1).
func consumerNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "consumer-" + strconv.Itoa(i)
	}
	return names
}

// membershipChange assigns the groups to before and to after with assign
// and returns the fullest member's agents over the mean for each, and the
// share of agents whose member changed. perGroup[g] is the agent count of
// group g.
func membershipChange(assign func([]string) ([]string, error), perGroup []int, before, after []string) (mmBefore, mmAfter, moved float64, err error) {
	a, err := assign(before)
	if err != nil {
		return 0, 0, 0, err
	}
	b, err := assign(after)
	if err != nil {
		return 0, 0, 0, err
	}
	total, changed := 0, 0
	for g, n := range perGroup {
		total += n
		if a[g] != b[g] {
			changed += n
		}
	}
	return maxOverMean(a, perGroup, len(before)), maxOverMean(b, perGroup, len(after)), float64(changed) / float64(total), nil
}

// maxOverMean returns the largest member load over the mean, with owners[g]
// the member of group g and members the member count.
func maxOverMean(owners []string, perGroup []int, members int) float64 {
	load := make(map[string]int, members)
	total, top := 0, 0
	for g, n := range perGroup {
		total += n
		load[owners[g]] += n
		top = max(top, load[owners[g]])
	}
	if total == 0 {
		return 0
	}
	return float64(top) * float64(members) / float64(total)
}

// pcgroupsOwners distributes partitions 0..partitions-1 over members the
// way pcgroups does for a consumer group whose max members (its partition
// count) is partitions and whose membership is members: with
// GeneratePartitionFilters, which gives each member the filters
// "<partition>.>" of its partitions.
func pcgroupsOwners(members []string, partitions int) ([]string, error) {
	owners := make([]string, partitions)
	for _, m := range members {
		for _, f := range pcgroups.GeneratePartitionFilters(members, uint(partitions), nil, m) {
			p, err := strconv.Atoi(strings.TrimSuffix(f, ".>"))
			if err != nil || p < 0 || p >= partitions || owners[p] != "" {
				return nil, fmt.Errorf("bench: pcgroups gave member %q the unexpected filter %q", m, f)
			}
			owners[p] = m
		}
	}
	for p, m := range owners {
		if m == "" {
			return nil, fmt.Errorf("bench: pcgroups left partition %d without a member", p)
		}
	}
	return owners, nil
}

// timeLookups runs n agent → group → consumer lookups and returns the mean
// time of one in nanoseconds.
func timeLookups(ctx context.Context, groups *placement.Groups, a *placement.Assignment, ids []string, n int) (float64, error) {
	const chunk = 1 << 16 // lookups between context checks
	sink := 0
	start := time.Now()
	for done := 0; done < n; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		end := min(done+chunk, n)
		for i := done; i < end; i++ {
			sink += len(a.Owner(groups.Group(ids[i%len(ids)])))
		}
		done = end
	}
	elapsed := time.Since(start)
	if sink == 0 {
		return 0, fmt.Errorf("bench: lookups found no owner")
	}
	return float64(elapsed.Nanoseconds()) / float64(n), nil
}

// WritePlacement prints res as a table, or with asJSON as one JSON object
// on one line.
func WritePlacement(w io.Writer, res PlacementResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	if _, err := fmt.Fprintf(w, "%d agents in %d groups; %d consumers, then one more joins\n\n",
		res.Agents, res.Groups, res.Consumers); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tmax/mean agents\tafter join\tmoved\tideal\tmoved/ideal\t\n")
	fmt.Fprintf(tw, "a2abus (bounded loads, c=%.2f)\t%.3f\t%.3f\t%.4f\t%.4f\t%.2f\t\n",
		res.LoadFactor, res.MaxOverMean, res.MaxOverMeanAfter, res.MovedFraction, res.IdealMovedFraction, res.MovedOverIdeal)
	fmt.Fprintf(tw, "pcgroups (balanced)\t%.3f\t\t%.4f\t%.4f\t%.2f\t\n",
		res.PCGroupsMaxOverMean, res.PCGroupsMovedFraction, res.IdealMovedFraction, ratio(res.PCGroupsMovedFraction, res.IdealMovedFraction))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nlookup agent → group → consumer at %d consumers: %.1f ns\n", res.LookupConsumers, res.LookupNs)
	return err
}
