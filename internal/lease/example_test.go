package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/internal/lease"
	"github.com/nats-io/nats.go/jetstream"
)

// Example elects one of two candidates on an embedded server: the first
// acquires the key, the second finds it held, and takes it at once when
// the first releases it.
func Example() {
	ctx := context.Background()
	srv, err := embedded.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	nc, err := srv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	const ttl = 10 * time.Second
	kv, err := lease.Bucket(ctx, js, "example", "who leads", ttl, 1)
	if err != nil {
		log.Fatal(err)
	}
	a, _ := lease.New(kv, "leader", ttl)
	b, _ := lease.New(kv, "leader", ttl)

	fmt.Println("a acquires:", a.Acquire(ctx, []byte("a")), a.Held())
	err = b.Acquire(ctx, []byte("b"))
	fmt.Println("b acquires: held by a:", errors.Is(err, lease.ErrHeld), b.Held())
	fmt.Println("a renews:", a.Renew(ctx, []byte("a")))
	fmt.Println("a releases:", a.Release(ctx), a.Held())
	fmt.Println("b acquires:", b.Acquire(ctx, []byte("b")), b.Held())
	err = a.Renew(ctx, []byte("a"))
	fmt.Println("a renews: lost:", errors.Is(err, lease.ErrLost))
	// Output:
	// a acquires: <nil> true
	// b acquires: held by a: true false
	// a renews: <nil>
	// a releases: <nil> false
	// b acquires: <nil> true
	// a renews: lost: true
}
