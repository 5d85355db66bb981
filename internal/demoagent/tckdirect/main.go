package main

import (
	"flag"
	"log"
	"net"
	"net/http"

	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/grpcbinding"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/a2aproject/a2a-go/v2/a2asrv/push"
	"google.golang.org/grpc"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9999", "address to serve JSON-RPC and HTTP+JSON on")
	grpcAddr := flag.String("grpc", "", "address to serve gRPC on (empty: none)")
	flag.Parse()
	base := "http://" + *listen
	card := demoagent.TCKCard("tck")
	card.SupportedInterfaces = []*a2a.AgentInterface{
		a2a.NewAgentInterface(base, a2a.TransportProtocolJSONRPC),
		a2a.NewAgentInterface(base+"/rest", a2a.TransportProtocolHTTPJSON),
	}
	card.Capabilities.PushNotifications = true
	// The SDK's own push notifications: configs in memory, posted inline.
	h := a2asrv.NewHandler(demoagent.TCK{}, a2asrv.WithPushNotifications(push.NewInMemoryStore(), push.NewHTTPPushSender(nil)))
	if *grpcAddr != "" {
		ln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			log.Fatal(err)
		}
		card.SupportedInterfaces = append(card.SupportedInterfaces, a2a.NewAgentInterface(*grpcAddr, a2a.TransportProtocolGRPC))
		s := grpc.NewServer()
		grpcbinding.New(grpcbinding.Single(h)).Register(s)
		go func() { log.Fatal(s.Serve(ln)) }()
	}
	mux := http.NewServeMux()
	mux.Handle(a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(card))
	mux.Handle("/rest/", http.StripPrefix("/rest", a2asrv.NewRESTHandler(h)))
	mux.Handle("/", a2asrv.NewJSONRPCHandler(h))
	log.Printf("serving the conformance agent on %s", base)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
