//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package codec

import "unsafe"

// lz4Load32 and lz4Load64 read little-endian words of src at i without
// bounds checks; the LZ4 compressor only calls them at positions it keeps
// inside src.
func lz4Load32(src []byte, i int) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(src)), i))
}

func lz4Load64(src []byte, i int) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(src)), i))
}
