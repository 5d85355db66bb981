package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9999", "address to serve on")
	flag.Parse()
	base := "http://" + *listen
	card := demoagent.TCKCard("tck")
	card.SupportedInterfaces = []*a2a.AgentInterface{
		a2a.NewAgentInterface(base, a2a.TransportProtocolJSONRPC),
		a2a.NewAgentInterface(base+"/rest", a2a.TransportProtocolHTTPJSON),
	}
	h := a2asrv.NewHandler(demoagent.TCK{})
	mux := http.NewServeMux()
	mux.Handle(a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(card))
	mux.Handle("/rest/", http.StripPrefix("/rest", a2asrv.NewRESTHandler(h)))
	mux.Handle("/", a2asrv.NewJSONRPCHandler(h))
	log.Printf("serving the conformance agent on %s", base)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
