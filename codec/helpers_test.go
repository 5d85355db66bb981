package codec

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

var words = strings.Fields("call task report result agent summarize weather über plan tool " +
	"search answer query context user reply status artifact stream batch")

// sentence returns about n bytes of word salad, like the seed's vectors.
func sentence(rng *rand.Rand, n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(words[rng.IntN(len(words))])
	}
	s := sb.String()[:n]
	return strings.ToValidUTF8(s, "") // the cut may split a rune
}

// testEnvelope returns an envelope carrying an A2A text message whose
// msgpack encoding is about size bytes.
func testEnvelope(rng *rand.Rand, i, size int) *Envelope {
	e := &Envelope{
		ID:        fmt.Sprintf("msg-%016x", rng.Uint64()),
		From:      fmt.Sprintf("agent-%d", rng.IntN(1000)),
		To:        fmt.Sprintf("agent-%d", rng.IntN(1000)),
		Kind:      "message/send",
		CreatedAt: 1700000000000 + int64(i),
		Headers:   Headers{{"trace", fmt.Sprintf("%08x", rng.Uint32())}},
		Message: &Message{
			MessageID: fmt.Sprintf("m-%d", i),
			Role:      RoleUser,
			ContextID: "ctx-1",
		},
	}
	base, _ := e.AppendMsgpack(nil)
	text := max(0, size-len(base)-30)
	e.Message.Parts = []Part{TextPart(sentence(rng, text))}
	return e
}

// benchEnvelopes returns n envelopes of about size bytes each.
func benchEnvelopes(n, size int) []*Envelope {
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	envs := make([]*Envelope, n)
	for i := range envs {
		envs[i] = testEnvelope(rng, i, size)
	}
	return envs
}

func nil2rng() *rand.Rand { return rand.New(rand.NewPCG(3, 4)) }
