package agentd

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/a2abus/a2abus/agentbus"
)

const permissionsUsage = "Usage: agentd permissions [--role agent|agentd|scalerd] [--agent ID] [--partitions N] [--nkey KEY]"

// permissionsCmd runs "agentd permissions [--role agent|agentd|scalerd]
// [--agent ID] [--partitions N] [--nkey KEY]": it prints the NATS
// authorization entry of a role's credentials, to paste into nats.conf's
// authorization users. The roles:
//   - agent (the default): an agent's own credentials, for --agent ID in a
//     own pool of --partitions partitions (agentbus.AgentPermissions);
//   - agentd: the daemon that hosts consumers and the gateway
//     (agentbus.DaemonPermissions);
//   - scalerd: the scaler daemon (agentbus.ScalerPermissions).
func permissionsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentd permissions", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	role := fs.String("role", "agent", "whose credentials: `agent`, agentd or scalerd")
	agent := fs.String("agent", "", "the agent `ID` the credentials are for (role agent)")
	partitions := fs.Int("partitions", agentbus.DefaultPartitions, "partition `count` of the agent's own pool (role agent)")
	nkey := fs.String("nkey", "", "the user's public `nkey` (U...); without it the entry names a user and password")
	usage := func(err error) int {
		fmt.Fprintf(stderr, "agentd: permissions: %v\n", err)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprintln(stdout, permissionsUsage)
			return exitOK
		}
		return usage(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *role != "agent" && *role != "agentd" && *role != "scalerd":
		return usage(fmt.Errorf("--role %q: want agent, agentd or scalerd", *role))
	case *role == "agent" && *agent == "":
		return usage(fmt.Errorf("--agent: name the agent"))
	case *role != "agent" && (set["agent"] || set["partitions"]):
		return usage(fmt.Errorf("--agent and --partitions are for --role agent; %s's permissions do not depend on them", *role))
	case *nkey != "" && (!strings.HasPrefix(*nkey, "U") || len(*nkey) != 56):
		return usage(fmt.Errorf("--nkey %q: want a user's public nkey (U and 55 more characters)", *nkey))
	}

	var p agentbus.Permissions
	var about string
	user := *role
	switch *role {
	case "agentd":
		p = agentbus.DaemonPermissions()
		about = "# agentd: provisions the streams, hosts consumers and the A2A gateway; cannot delete or purge a stream, nor set the scale target.\n"
	case "scalerd":
		p = agentbus.ScalerPermissions()
		about = "# scalerd: reads the backlog and the members, elects its leader and writes the scale target; cannot send, pull or read a message, nor delete or purge a stream.\n" +
			"# Its connection must use the inbox prefix " + agentbus.ScalerInboxPrefix + " (scalerd does).\n"
	default:
		var err error
		if p, err = agentbus.AgentPermissions(*agent, *partitions); err != nil {
			return usage(fmt.Errorf("--agent %q --partitions %d: %w", *agent, *partitions, err))
		}
		user = *agent
		about = fmt.Sprintf("# Agent %s (its own pool %s, %d partitions): sends to any agent, serves its pool, reads nothing else.\n"+
			"# Its connection must use the inbox prefix %s (nats.CustomInboxPrefix).\n",
			*agent, *agent, *partitions, agentbus.AgentInboxPrefix(*agent))
	}
	// An unquoted $NAME is read from the server's environment.
	who := fmt.Sprintf("user: %s, password: $%s_PASSWORD", strconv.Quote(user), strings.ToUpper(strings.ReplaceAll(user, "-", "_")))
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
	fmt.Fprintf(stdout, `%s{
  %s
  permissions: {
    publish: { allow: [%s] }
    subscribe: { allow: [%s] }
  }
}
`, about, who, quote(p.Publish), quote(p.Subscribe))
	return exitOK
}
