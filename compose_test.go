package a2abus_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/a2abus/a2abus"
	"github.com/a2abus/a2abus/internal/agentd"
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

// No Docker engine runs where the tests run, so these tests check the
// compose cluster the way "docker compose config" and a first "up" would:
// the file parses, every service it names exists, the files it mounts and
// builds exist, no two services publish one host port, the NATS routes and
// the URLs agentd, scalerd, the exporters and Prometheus use reach services
// on ports they listen on, and the image builds the commands it runs.

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// args is what the container runs: entrypoint then command.
func (s composeService) args() []string { return append(slices.Clip(s.Entrypoint), s.Command...) }

// flag returns the value of --name in the service's arguments.
func (s composeService) flag(name string) (string, bool) {
	args := s.args()
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// dependsOn lists the services a service waits for, in either form the
// compose spec allows (a list, or a map of service to condition).
func (s composeService) dependsOn() ([]string, error) {
	switch s.DependsOn.Kind {
	case 0:
		return nil, nil
	case yaml.SequenceNode:
		var out []string
		err := s.DependsOn.Decode(&out)
		return out, err
	case yaml.MappingNode:
		var m map[string]any
		if err := s.DependsOn.Decode(&m); err != nil {
			return nil, err
		}
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out, nil
	}
	return nil, fmt.Errorf("depends_on: want a list or a map")
}

// listens returns the container ports a service listens on, from what it
// runs; nats holds the NATS services' options as their servers read them.
func listens(name string, s composeService, nats map[string]*server.Options) ([]int, error) {
	switch {
	case strings.HasPrefix(name, "nats-exporter"):
		return []int{7777}, nil // the exporter's default
	case isNATS(s):
		o := nats[name]
		if o == nil {
			return nil, nil // its configuration did not load: reported already
		}
		port := o.Port
		if port == 0 {
			port = server.DEFAULT_PORT
		}
		ports := []int{port}
		if o.HTTPPort != 0 {
			ports = append(ports, o.HTTPPort)
		}
		if o.Cluster.Port != 0 {
			ports = append(ports, o.Cluster.Port)
		}
		return ports, nil
	case name == "prometheus":
		return []int{9090}, nil
	case name == "jaeger":
		return []int{4317, 4318, 16686}, nil // OTLP gRPC and HTTP, the UI
	}
	var ports []int
	for _, f := range []string{"--http", "--grpc"} {
		addr, ok := s.flag(f)
		if !ok || addr == "off" {
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", f, addr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", f, addr, err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

func isNATS(s composeService) bool { return strings.HasPrefix(s.Image, "nats:") }

// bindMounts maps the container paths a service mounts from the
// repository to their files, relative to the compose file's directory.
func (s composeService) bindMounts() map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		src, rest, ok := strings.Cut(v, ":")
		if !ok || !(strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/")) {
			continue
		}
		target, _, _ := strings.Cut(rest, ":")
		m[path.Clean(target)] = filepath.Clean(src)
	}
	return m
}

// namedVolumeTargets lists where a service mounts named volumes.
func (s composeService) namedVolumeTargets() []string {
	var out []string
	for _, v := range s.Volumes {
		src, rest, ok := strings.Cut(v, ":")
		if !ok || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			continue
		}
		target, _, _ := strings.Cut(rest, ":")
		out = append(out, path.Clean(target))
	}
	return out
}

var (
	confInclude  = regexp.MustCompile(`(?m)^\s*include\s+"?([^"\s;]+)"?`)
	confVariable = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)
)

// natsOptions loads a NATS service's configuration as its server would in
// its container: the arguments it runs, with its --config file and the
// files that includes read from the repository where the service mounts
// them, and its environment (set with t.Setenv, nats-server reads
// $VARIABLES from the process environment). It checks that every file
// the configuration includes is mounted where the include looks for it.
func natsOptions(t testing.TB, dir string, s composeService) (*server.Options, error) {
	args := s.args()
	if len(args) == 0 || args[0] != "nats-server" {
		return nil, fmt.Errorf("runs %v, want nats-server", args)
	}
	cfgPath, ok := s.flag("--config")
	if !ok {
		return nil, errors.New("no --config")
	}
	mounts := s.bindMounts()
	src, ok := mounts[path.Clean(cfgPath)]
	if !ok {
		return nil, fmt.Errorf("--config %s is not a file it mounts from the repository", cfgPath)
	}
	text, err := os.ReadFile(filepath.Join(dir, src))
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", cfgPath, err)
	}
	var code strings.Builder // the file without its comments
	for line := range strings.Lines(string(text)) {
		line, _, _ = strings.Cut(strings.TrimSuffix(line, "\n"), "#")
		code.WriteString(line + "\n")
	}
	for _, m := range confInclude.FindAllStringSubmatch(code.String(), -1) {
		inc := m[1]
		inContainer := path.Join(path.Dir(cfgPath), inc)
		want := filepath.Join(filepath.Dir(src), filepath.FromSlash(inc))
		if got, ok := mounts[inContainer]; !ok || got != want {
			return nil, fmt.Errorf("%s includes %s, which it reads at %s: mount %s there (mounted: %v)", src, inc, inContainer, want, mounts)
		}
	}
	for _, m := range confVariable.FindAllStringSubmatch(code.String(), -1) {
		name := m[1]
		if v, ok := s.Environment[name]; ok {
			t.Setenv(name, v)
		} else {
			t.Setenv(name, "") // restored at the end of the test
			_ = os.Unsetenv(name)
		}
	}
	args = slices.Clone(args[1:])
	for i, a := range args {
		if (a == "--config" || a == "-c") && i+1 < len(args) {
			args[i+1] = filepath.Join(dir, src)
		}
	}
	none := func() {}
	o, err := server.ConfigureOptions(flag.NewFlagSet("nats-server", flag.ContinueOnError), args, none, none, none)
	if err != nil {
		return nil, fmt.Errorf("nats-server %s: %w", strings.Join(s.args()[1:], " "), err)
	}
	return o, nil
}

// checkCompose returns every problem found in a compose file whose
// relative paths start at dir.
func checkCompose(t testing.TB, dir string, data []byte) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		return []error{fmt.Errorf("docker-compose.yml: %w", err)}
	}

	names := make([]string, 0, len(cf.Services))
	for name := range cf.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	var natsServices []string
	natsOpts := map[string]*server.Options{}
	for _, name := range names {
		s := cf.Services[name]
		if !isNATS(s) {
			continue
		}
		natsServices = append(natsServices, name)
		o, err := natsOptions(t, dir, s)
		if err != nil {
			bad("%s: %v", name, err)
			continue
		}
		natsOpts[name] = o
	}
	listening := map[string][]int{}
	hostPorts := map[string]string{}
	for _, name := range names {
		s := cf.Services[name]
		ports, err := listens(name, s, natsOpts)
		if err != nil {
			bad("%s: %v", name, err)
		}
		listening[name] = ports

		// Images are pinned; a2abus's own is built here.
		switch {
		case s.Image == "":
			bad("%s: no image", name)
		case s.Build != nil:
			if s.Build != "." {
				bad("%s: build %v, want the repository's Dockerfile (.)", name, s.Build)
			}
		case !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest"):
			bad("%s: image %s is not pinned to a version", name, s.Image)
		}
		for _, p := range s.Ports {
			host, container, ok := strings.Cut(p, ":")
			if !ok {
				bad("%s: port %q: want HOST:CONTAINER", name, p)
				continue
			}
			if other, taken := hostPorts[host]; taken {
				bad("%s: host port %s is taken by %s too", name, host, other)
			}
			hostPorts[host] = name
			if cp, err := strconv.Atoi(container); err != nil || !slices.Contains(ports, cp) {
				bad("%s: publishes container port %s, but listens on %v", name, container, ports)
			}
		}
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				bad("%s: volume %q: want SOURCE:TARGET", name, v)
				continue
			}
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					bad("%s: mounts %s, which does not exist", name, src)
				}
			} else if _, ok := cf.Volumes[src]; !ok {
				bad("%s: volume %s is not declared", name, src)
			}
		}
		deps, err := s.dependsOn()
		if err != nil {
			bad("%s: %v", name, err)
		}
		for _, d := range deps {
			if _, ok := cf.Services[d]; !ok {
				bad("%s: depends on %s, which is not a service", name, d)
			}
		}
		if hc := s.Healthcheck; hc != nil {
			for _, a := range hc.Test {
				if u, err := url.Parse(a); err == nil && u.Scheme == "http" {
					if p, _ := strconv.Atoi(u.Port()); !slices.Contains(ports, p) {
						bad("%s: health check %s, but it listens on %v", name, a, ports)
					}
				}
			}
		}
	}

	// Every URL a service is given reaches a service on a port it listens on.
	reaches := func(who, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			bad("%s: URL %q: %v", who, raw, err)
			return
		}
		p, _ := strconv.Atoi(u.Port())
		if _, ok := cf.Services[u.Hostname()]; !ok {
			bad("%s: %s is not a service", who, raw)
		} else if !slices.Contains(listening[u.Hostname()], p) {
			bad("%s: %s, but %s listens on %v", who, raw, u.Hostname(), listening[u.Hostname()])
		}
	}
	for _, name := range names {
		s := cf.Services[name]
		if v, ok := s.flag("--nats"); ok {
			for _, u := range strings.Split(v, ",") {
				reaches(name, u)
			}
		}
		if v, ok := s.Environment["NATS_URL"]; ok {
			for _, u := range strings.Split(v, ",") {
				reaches(name, u)
			}
		}
		if v, ok := s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; ok {
			reaches(name, v)
			// The port speaks the protocol the service exports with.
			want := map[string]string{"4317": "grpc", "4318": "http/protobuf"}
			if u, err := url.Parse(v); err == nil && want[u.Port()] != s.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"] {
				bad("%s: OTLP to %s with protocol %q, but that port speaks %q", name, v, s.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"], want[u.Port()])
			}
		}
		if strings.HasPrefix(name, "nats-exporter") {
			if args := s.args(); len(args) > 0 {
				reaches(name, args[len(args)-1])
			}
		}
	}

	// The NATS servers are three, each named after its service, keeping
	// JetStream's files in a volume, and routed to the three on their
	// route ports, in one cluster. Health means a meta leader: a server
	// that only has JetStream enabled may not have met the others yet.
	if len(natsServices) != 3 {
		bad("%d NATS services %v, want 3", len(natsServices), natsServices)
	}
	clusters := map[string]bool{}
	for _, name := range natsServices {
		s, o := cf.Services[name], natsOpts[name]
		if o == nil {
			continue
		}
		if o.ServerName != name {
			bad("%s: server name %q, want the service's name", name, o.ServerName)
		}
		if !o.JetStream {
			bad("%s: JetStream is not enabled", name)
		}
		if o.StoreDir == "" || !slices.Contains(s.namedVolumeTargets(), path.Clean(o.StoreDir)) {
			bad("%s: store dir %q is not on a volume it mounts (%v): its streams would not outlive the container", name, o.StoreDir, s.namedVolumeTargets())
		}
		if o.Cluster.Port == 0 || o.Cluster.Name == "" {
			bad("%s: no cluster listener or name", name)
		}
		clusters[o.Cluster.Name] = true
		var routed []string
		for _, u := range o.Routes {
			routed = append(routed, u.Hostname())
			if peer := natsOpts[u.Hostname()]; peer != nil && u.Port() != strconv.Itoa(peer.Cluster.Port) {
				bad("%s: route %s, but %s listens for routes on %d", name, u, u.Hostname(), peer.Cluster.Port)
			}
		}
		slices.Sort(routed)
		if !slices.Equal(routed, natsServices) {
			bad("%s: routes to %v, but the NATS services are %v", name, routed, natsServices)
		}
		if hc := s.Healthcheck; hc == nil || !slices.ContainsFunc(hc.Test, func(a string) bool {
			u, err := url.Parse(a)
			return err == nil && u.Path == "/healthz" && (u.RawQuery == "" || u.Query().Get("js-meta-only") == "true")
		}) {
			bad("%s: health check %v does not wait for a JetStream meta leader (/healthz?js-meta-only=true)", name, hc)
		}
	}
	if len(clusters) > 1 {
		bad("the NATS services are in clusters %v, want one", clusters)
	}

	// Prometheus scrapes services on ports they listen on.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	promText, err := os.ReadFile(filepath.Join(dir, "deploy", "prometheus.yml"))
	if err == nil {
		err = yaml.Unmarshal(promText, &prom)
	}
	if err != nil {
		bad("deploy/prometheus.yml: %v", err)
	}
	jobs := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		jobs[sc.JobName] = true
		for _, st := range sc.StaticConfigs {
			for _, t := range st.Targets {
				reaches("prometheus job "+sc.JobName, "http://"+t)
			}
		}
	}
	for _, job := range []string{"agentd", "scalerd", "nats"} {
		if !jobs[job] {
			bad("deploy/prometheus.yml: no %s job", job)
		}
	}
	return errs
}

func TestComposeCluster(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkCompose(t, ".", data) {
		t.Error(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nats-1", "nats-2", "nats-3", "agentd-1", "agentd-2", "agentd-3", "scalerd", "prometheus", "jaeger", "nats-box"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}
	for _, name := range []string{"nats-1", "agentd-1", "scalerd"} {
		if cf.Services[name].Healthcheck == nil {
			t.Errorf("%s has no health check", name)
		}
	}
}

// TestComposeAgentdCommands: every agentd service runs a command agentd
// accepts (its flags exist and their values parse), and the agentds all
// host the demo agents in one pool, so that they share its partitions and
// its scale target.
func TestComposeAgentdCommands(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	pools := map[string][]string{}
	for name, s := range cf.Services {
		args := s.args()
		if len(args) == 0 || args[0] != "agentd" {
			continue
		}
		// Flags are parsed in order up to --help, which stops agentd
		// before it starts.
		var stderr strings.Builder
		if code := agentd.Main(context.Background(), append(slices.Clip(args[1:]), "--help"), strings.NewReader(""), io.Discard, &stderr, noEnv); code != 0 {
			t.Errorf("%s: agentd %s: exit %d: %s", name, strings.Join(args[1:], " "), code, stderr.String())
		}
		if !slices.Contains(args, "--demo") {
			t.Errorf("%s: agentd does not host the demo agents (--demo)", name)
		}
		pool, ok := s.flag("--pool")
		if !ok {
			pool = agentd.DefaultConfig().Pool
		}
		pools[pool] = append(pools[pool], name)
	}
	if len(pools) != 1 {
		t.Errorf("the agentd services are in pools %v, want one pool", pools)
	}
}

// TestComposeCheckFindsProblems breaks the compose file in the ways the
// check is for, one at a time: each must be reported.
func TestComposeCheckFindsProblems(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, tt := range []struct {
		name, old, new, want string
	}{
		{"a host port twice", `ports: ["8082:8080", "50052:50051"]`, `ports: ["8080:8080", "50052:50051"]`, "host port 8080 is taken"},
		{"a missing file", "./deploy/prometheus.yml:", "./deploy/missing.yml:", "does not exist"},
		{"an unknown dependency", "depends_on: [nats-1]", "depends_on: [nats-9]", "nats-9, which is not a service"},
		{"a URL to nowhere", "nats://nats-2:4222,nats://nats-3:4222,nats://nats-1:4222", "nats://nats-2:4333", "nats-2 listens on"},
		{"a wrong server name", "A2ABUS_NATS_NAME: nats-3", "A2ABUS_NATS_NAME: nats-x", "want the service's name"},
		{"a route to nowhere", "nats-route://nats-3:6222]", "nats-route://nats-9:6222]", "routes to [nats-1 nats-2 nats-9]"},
		{"a route to the wrong port", "nats-route://nats-2:6222,", "nats-route://nats-2:4222,", "nats-2 listens for routes on 6222"},
		{"a variable not set", "      A2ABUS_NATS_STORE_DIR: /data\n", "", "variable reference for 'A2ABUS_NATS_STORE_DIR'"},
		{"a store dir off the volume", "A2ABUS_NATS_STORE_DIR: /data", "A2ABUS_NATS_STORE_DIR: /tmp/data", "is not on a volume"},
		{"an include not mounted", `"./nats.conf:/etc/nats/nats.conf:ro"`, `"./nats.conf:/etc/nats.conf:ro"`, "includes ../nats.conf"},
		{"a config not mounted", `"/etc/nats/deploy/nats-cluster.conf"]`, `"/etc/nats/nats-cluster.conf"]`, "is not a file it mounts"},
		{"a health check before the meta leader", "healthz?js-meta-only=true", "healthz?js-enabled-only=true", "does not wait for a JetStream meta leader"},
		{"an unpinned image", "prom/prometheus:v3.5.0", "prom/prometheus:latest", "not pinned"},
		{"an undeclared volume", `"nats-1:/data"`, `"nats-9:/data"`, "volume nats-9 is not declared"},
		{"not YAML", "services:", "services: [", "docker-compose.yml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(text, tt.old) {
				t.Fatalf("the compose file has no %q to break", tt.old)
			}
			errs := checkCompose(t, ".", []byte(strings.Replace(text, tt.old, tt.new, 1)))
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tt.want) }) {
				t.Errorf("problems %v, want one saying %q", errs, tt.want)
			}
		})
	}
}

// TestDockerfile checks that the image builds the commands the compose
// file runs, with the Go version of go.mod.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "FROM golang:" + string(goVersion[1]); !strings.Contains(string(df), want) {
		t.Errorf("Dockerfile does not build with %s (go.mod's Go)", want)
	}
	for _, cmd := range []string{"agentd", "scalerd"} {
		if _, err := os.Stat(filepath.Join("cmd", cmd, "main.go")); err != nil {
			t.Errorf("cmd/%s: %v", cmd, err)
		}
		if !strings.Contains(string(df), "./cmd/"+cmd) || !strings.Contains(string(df), "/out/"+cmd) {
			t.Errorf("Dockerfile does not build and copy %s", cmd)
		}
	}
	if !regexp.MustCompile(`CGO_ENABLED=0 go build`).Match(df) {
		t.Error("Dockerfile does not build static binaries (CGO_ENABLED=0)")
	}
	if _, err := os.Stat(".dockerignore"); errors.Is(err, os.ErrNotExist) {
		t.Error("no .dockerignore: the build context would carry .git and data")
	}
}

// TestNATSConfShared: nats.conf is the part every server shares, compiled
// into agentd's embedded server: it names no host, port, directory or
// route (those come from deploy/nats-cluster.conf, flags or agentd's
// options, and nats-server refuses --store_dir beside a store_dir in the
// file and applies http beside http_port in no fixed order), and it has no
// include or variable, which a parse from memory could not resolve.
func TestNATSConfShared(t *testing.T) {
	text, err := os.ReadFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	m, err := conf.Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"listen", "port", "host", "net", "http", "http_port", "monitor_port", "https", "https_port",
		"server_name", "store_dir", "storedir", "cluster", "routes"} {
		if _, ok := m[key]; ok {
			t.Errorf("nats.conf sets %s: a host's setting, for deploy/nats-cluster.conf", key)
		}
	}
	js, _ := m["jetstream"].(map[string]any)
	if js == nil {
		t.Error("nats.conf has no jetstream block")
	}
	for _, key := range []string{"store_dir", "storedir", "store"} {
		if _, ok := js[key]; ok {
			t.Errorf("nats.conf's jetstream block sets %s: a host's setting", key)
		}
	}
	for _, line := range strings.Split(string(text), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if f := strings.Fields(line); len(f) > 0 && f[0] == "include" || strings.Contains(line, "$") {
			t.Errorf("nats.conf: %q: no includes or variables in the compiled-in configuration", strings.TrimSpace(line))
		}
	}
	if string(text) != a2abus.NATSConf {
		t.Error("a2abus.NATSConf is not nats.conf")
	}
}
