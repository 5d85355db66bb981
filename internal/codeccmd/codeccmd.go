package codeccmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/a2abus/a2abus/codec"
)

// Exit codes.
const (
	exitOK    = 0
	exitInput = 1 // bad input, unreadable file, failed write
	exitUsage = 2 // bad command line
)

const usage = `usage:
  agentd codec decode [--compact] [--max-size BYTES] [FILE|-]
      read a frame (RAW, LZ4, S2B or ZST) and print its value as JSON
  agentd codec encode [--compress auto|lz4|s2|zstd|none] [--max-size BYTES] [FILE|-]
      read JSON and write a frame (default --compress lz4: readable by the Python seed)

JSON mapping: msgpack bin is {"$bytes": "<base64>"}; integers are exact over
the int64 and uint64 range; map keys are strings; object key order is kept.
FILE defaults to standard input ("-").
`

// Run runs `agentd codec` with args, the arguments after "codec", and
// returns the process exit code: 0 on success, 1 for bad input, 2 for a
// bad command line. Errors are written to stderr as one line.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "decode":
		return decode(ctx, args[1:], stdin, stdout, stderr)
	case "encode":
		return encode(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "agentd codec: unknown command %q (want decode or encode)\n", args[0])
	return exitUsage
}

// command holds what decode and encode share.
type command struct {
	name   string
	stderr io.Writer
}

func (c command) fail(code int, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(msg, "\n", " ")
	fmt.Fprintf(c.stderr, "agentd codec %s: %s\n", c.name, msg)
	return code
}

// parse parses flags and the optional FILE argument.
func (c command) parse(fs *flag.FlagSet, args []string) (file string, code int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stderr, usage)
			return "", exitOK, false
		}
		return "", c.fail(exitUsage, "%v", err), false
	}
	switch fs.NArg() {
	case 0:
		return "-", 0, true
	case 1:
		return fs.Arg(0), 0, true
	}
	return "", c.fail(exitUsage, "want one FILE or -, got %d arguments", fs.NArg()), false
}

// readInput reads FILE (or stdin for "-"), failing past limit bytes.
func readInput(ctx context.Context, file string, stdin io.Reader, limit int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := stdin
	name := "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, file
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", name, limit, codec.ErrTooLarge)
	}
	return data, ctx.Err()
}

func decode(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := command{name: "decode", stderr: stderr}
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	compact := fs.Bool("compact", false, "print JSON on one line")
	maxSize := fs.Int("max-size", codec.DefaultMaxSize, "largest body, raw or decompressed, in bytes")
	file, code, ok := cmd.parse(fs, args)
	if !ok {
		return code
	}
	c, err := codec.New(codec.WithMaxSize(*maxSize))
	if err != nil {
		return cmd.fail(exitUsage, "%v", err)
	}
	// A frame is at most the LZ4 bound of the largest body.
	frame, err := readInput(ctx, file, stdin, int64(*maxSize)+int64(*maxSize)/255+1024)
	if err != nil {
		return cmd.fail(exitInput, "%v", err)
	}
	body, err := c.DecodeFrame(nil, frame)
	if err != nil {
		return cmd.fail(exitInput, "%v", err)
	}
	js, err := codec.MsgpackToJSON(nil, body)
	if err != nil {
		return cmd.fail(exitInput, "%v", err)
	}
	if !*compact {
		var out bytes.Buffer
		if err := json.Indent(&out, js, "", "  "); err != nil {
			return cmd.fail(exitInput, "%v", err)
		}
		js = out.Bytes()
	}
	if _, err := stdout.Write(append(js, '\n')); err != nil {
		return cmd.fail(exitInput, "writing output: %v", err)
	}
	return exitOK
}

func encode(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := command{name: "encode", stderr: stderr}
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	compress := fs.String("compress", "lz4", "auto, lz4, s2, zstd or none")
	maxSize := fs.Int("max-size", codec.DefaultMaxSize, "largest msgpack body, in bytes")
	file, code, ok := cmd.parse(fs, args)
	if !ok {
		return code
	}
	comp, err := codec.ParseCompression(*compress)
	if err != nil {
		return cmd.fail(exitUsage, "--compress: %v", err)
	}
	c, err := codec.New(codec.WithCompression(comp), codec.WithMaxSize(*maxSize))
	if err != nil {
		return cmd.fail(exitUsage, "%v", err)
	}
	// JSON is larger than its msgpack: base64, escapes, digits.
	js, err := readInput(ctx, file, stdin, 4*int64(*maxSize)+1024)
	if err != nil {
		return cmd.fail(exitInput, "%v", err)
	}
	v, err := codec.ParseJSON(js)
	if err != nil {
		return cmd.fail(exitInput, "%v", err)
	}
	frame, err := c.EncodeValue(nil, v)
	if err != nil {
		return cmd.fail(exitInput, "%v", err)
	}
	if _, err := stdout.Write(frame); err != nil {
		return cmd.fail(exitInput, "writing output: %v", err)
	}
	return exitOK
}
