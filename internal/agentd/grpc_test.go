package agentd

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	a2agrpc "github.com/a2aproject/a2a-go/v2/a2agrpc/v1"
	a2apb "github.com/a2aproject/a2a-go/v2/a2apb/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestGRPCGateway: agentd serves the gRPC binding on --grpc, listed in
// the cards with the agent as tenant; the a2a-go client that takes it
// calls the demo agents through the bus, and a gRPC call is counted.
func TestGRPCGateway(t *testing.T) {
	cfg := testConfig(t)
	cfg.Demo = true
	d := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	card, err := agentcard.DefaultResolver.Resolve(ctx, "http://"+d.HTTPAddr()+"/a2a/echo")
	if err != nil {
		t.Fatal(err)
	}
	var iface *a2a.AgentInterface
	for _, i := range card.SupportedInterfaces {
		if i.ProtocolBinding == a2a.TransportProtocolGRPC {
			iface = i
		}
	}
	if iface == nil || iface.URL != d.GRPCAddr() || iface.Tenant != "echo" {
		t.Fatalf("card's gRPC interface %+v, want %s with tenant echo", iface, d.GRPCAddr())
	}
	c, err := a2aclient.NewFromCard(ctx, card,
		a2agrpc.WithGRPCTransport(grpc.WithTransportCredentials(insecure.NewCredentials())),
		a2aclient.WithConfig(a2aclient.Config{PreferredTransports: []a2a.TransportProtocol{a2a.TransportProtocolGRPC}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	res, err := c.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("over gRPC"))})
	if m, ok := res.(*a2a.Message); err != nil || !ok || len(m.Parts) != 1 || m.Parts[0].Text() != "over gRPC" {
		t.Fatalf("echo over gRPC: %#v, %v", res, err)
	}
	_, body := get(t, d, "/metrics")
	if want := `a2abus_gateway_requests_total{binding="grpc",status="OK"} 1`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestGRPCClientCertificates: with --http-tls-cert and --http-client-ca
// the gRPC binding speaks TLS with HTTP's certificate and lets in calls
// with a certificate the CA signed.
func TestGRPCClientCertificates(t *testing.T) {
	certs := embeddedtest.NewCerts(t)
	cfg := testConfig(t)
	cfg.Demo = true
	cfg.HTTPTLSCert, cfg.HTTPTLSKey, cfg.HTTPClientCA = certs.ServerCertFile, certs.ServerKeyFile, certs.CAFile
	d := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg := &a2apb.SendMessageRequest{Tenant: "echo", Message: &a2apb.Message{
		MessageId: "m1", Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
	}}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
		want  codes.Code
	}{
		{"with a client certificate", credentials.NewTLS(&tls.Config{RootCAs: certs.Pool, Certificates: []tls.Certificate{certs.Client}, ServerName: "localhost"}), codes.OK},
		{"without one", credentials.NewTLS(&tls.Config{RootCAs: certs.Pool, ServerName: "localhost"}), codes.Unauthenticated},
		{"in plaintext", insecure.NewCredentials(), codes.Unavailable},
	} {
		conn, err := grpc.NewClient(d.GRPCAddr(), grpc.WithTransportCredentials(tc.creds))
		if err != nil {
			t.Fatal(err)
		}
		_, err = a2apb.NewA2AServiceClient(conn).SendMessage(ctx, msg)
		conn.Close()
		if status.Code(err) != tc.want {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
