//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package codec

import "encoding/binary"

// lz4Load32 and lz4Load64 read little-endian words of src at i.
func lz4Load32(src []byte, i int) uint32 { return binary.LittleEndian.Uint32(src[i:]) }

func lz4Load64(src []byte, i int) uint64 { return binary.LittleEndian.Uint64(src[i:]) }
