package agentd

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/placement"
)

// permissionsCmd runs "agentd permissions --agent ID [--groups N]
// [--nkey KEY]": it prints the NATS authorization entry of an agent's own
// credentials (agentbus.AgentPermissions), to paste into nats.conf.
func permissionsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentd permissions", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	agent := fs.String("agent", "", "the agent `ID` the credentials are for")
	groups := fs.Int("groups", placement.DefaultGroups, "the bus's consumer group `count`")
	nkey := fs.String("nkey", "", "the agent's public `nkey` (U...); without it the entry names a user and password")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *agent == "" {
		if err == flag.ErrHelp {
			fmt.Fprintln(stdout, "Usage: agentd permissions --agent ID [--groups N] [--nkey KEY]")
			return exitOK
		}
		switch {
		case err != nil:
		case fs.NArg() > 0:
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		default:
			err = fmt.Errorf("--agent: name the agent")
		}
		fmt.Fprintf(stderr, "agentd: permissions: %v\n", err)
		return exitUsage
	}
	g, err := placement.NewGroups(*groups)
	if err != nil {
		fmt.Fprintf(stderr, "agentd: permissions: --groups %d: %v\n", *groups, err)
		return exitUsage
	}
	p, err := agentbus.AgentPermissions(g, *agent)
	if err != nil {
		fmt.Fprintf(stderr, "agentd: permissions: --agent %q: %v\n", *agent, err)
		return exitUsage
	}
	if *nkey != "" && (!strings.HasPrefix(*nkey, "U") || len(*nkey) != 56) {
		fmt.Fprintf(stderr, "agentd: permissions: --nkey %q: want a user's public nkey (U and 55 more characters)\n", *nkey)
		return exitUsage
	}
	// An unquoted $NAME is read from the server's environment.
	who := fmt.Sprintf("user: %s, password: $%s_PASSWORD", strconv.Quote(*agent), strings.ToUpper(strings.ReplaceAll(*agent, "-", "_")))
	if *nkey != "" {
		who = "nkey: " + *nkey
	}
	quote := func(subjects []string) string {
		q := make([]string, len(subjects))
		for i, s := range subjects {
			q[i] = strconv.Quote(s)
		}
		return strings.Join(q, ", ")
	}
	group, _ := g.GroupToken(g.Group(*agent))
	fmt.Fprintf(stdout, `# Agent %s (group %s of %d): sends to any agent, serves its group, reads nothing else.
# Its connection must use the inbox prefix %s (nats.CustomInboxPrefix).
{
  %s
  permissions: {
    publish: { allow: [%s] }
    subscribe: { allow: [%s] }
  }
}
`, *agent, group, *groups, agentbus.AgentInboxPrefix(*agent), who, quote(p.Publish), quote(p.Subscribe))
	return exitOK
}
