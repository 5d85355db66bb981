package codec

import (
	"encoding/binary"
	"math/bits"
)

// lz4Linked compresses the blocks of an LZ4 frame with linked blocks as the
// reference library's LZ4F_compressFrame does for Python's
// lz4.frame.compress(b, compression_level=1) when b is over 64 KiB: one
// LZ4_compress_fast_continue stream over contiguous input, so that each
// block may refer to the 64 KiB before it, with the byU32 table and hash5.
// It follows LZ4_compress_generic (lz4.c, BSD-2-Clause, Yann Collet)
// statement for statement, including the output checks of limitedOutput
// that make a block that does not shrink fail part way: the hash table
// state after such a failure affects the next blocks.
type lz4Linked struct {
	table [1 << lz4HashLog]uint32
}

const (
	lz4HashLog     = 12 // LZ4_HASHLOG for LZ4_MEMORY_USAGE 14
	lz4MFLimit     = 12
	lz4LastLits    = 5
	lz4MinMatch    = 4
	lz4MinLength   = lz4MFLimit + 1
	lz4DistanceMax = 65535
	lz4SkipTrigger = 6
)

// hash5 is LZ4_hash5 for byU32 tables on little-endian 64-bit machines.
func lz4Hash5(v uint64) uint32 {
	return uint32((v<<24)*889523592379>>(64-lz4HashLog)) & (1<<lz4HashLog - 1)
}

// compressBlock compresses src[start:end], which may refer back to
// src[:start], into dst, and returns the compressed size, or 0 if it does
// not fit in len(dst) bytes.
func (c *lz4Linked) compressBlock(src []byte, start, end int, dst []byte) int {
	var (
		table          = &c.table
		anchor, ip, di = start, start, 0
		mfLimitPlusOne = end - lz4MFLimit + 1
		matchLimit     = end - lz4LastLits
		olimit         = len(dst)
		match, token   int
		forwardH       uint32
	)
	if start < 0 || end > len(src) || start > end {
		return 0
	}
	// Every load below is at a position the algorithm keeps inside
	// src[:end]: searched positions stop 11 bytes before end, matches lie
	// before the position compared, and table entries are positions
	// already passed in this frame (the table is cleared per frame). On
	// little-endian machines the loads go without bounds checks
	// (lz4load_le.go), as in pierrec/lz4's compressors.
	load32 := func(i int) uint32 { return lz4Load32(src, i) }
	load64 := func(i int) uint64 { return lz4Load64(src, i) }

	if end-start < lz4MinLength {
		goto lastLiterals
	}
	// First byte.
	table[lz4Hash5(load64(ip))] = uint32(ip)
	ip++
	forwardH = lz4Hash5(load64(ip))

	for {
		// Find a match.
		{
			forwardIP := ip
			step := 1
			searchMatchNb := 1 << lz4SkipTrigger
			for {
				h := forwardH
				cur := forwardIP
				matchIndex := int(table[h])
				ip = forwardIP
				forwardIP += step
				step = searchMatchNb >> lz4SkipTrigger
				searchMatchNb++
				if forwardIP > mfLimitPlusOne {
					goto lastLiterals
				}
				match = matchIndex
				forwardH = lz4Hash5(load64(forwardIP))
				table[h] = uint32(cur)
				if matchIndex+lz4DistanceMax < cur {
					continue // too far
				}
				if load32(match) == load32(ip) {
					break
				}
			}
		}

		// Catch up: the whole prefix is in src, so the low limit is 0.
		for ip > anchor && match > 0 && src[ip-1] == src[match-1] {
			ip--
			match--
		}

		// Encode literals.
		{
			litLength := ip - anchor
			token = di
			di++
			if di+litLength+(2+1+lz4LastLits)+litLength/255 > olimit {
				return 0
			}
			if litLength >= 15 {
				dst[token] = 15 << 4
				l := litLength - 15
				for ; l >= 255; l -= 255 {
					dst[di] = 255
					di++
				}
				dst[di] = byte(l)
				di++
			} else {
				dst[token] = byte(litLength << 4)
			}
			di += copy(dst[di:], src[anchor:ip])
		}

	nextMatch:
		// Encode offset.
		offset := ip - match
		dst[di] = byte(offset)
		dst[di+1] = byte(offset >> 8)
		di += 2

		// Encode match length.
		{
			matchCode := lz4Count(src, ip+lz4MinMatch, match+lz4MinMatch, matchLimit)
			ip += matchCode + lz4MinMatch
			if di+(1+lz4LastLits)+(matchCode+240)/255 > olimit {
				return 0
			}
			if matchCode >= 15 {
				dst[token] += 15
				matchCode -= 15
				for ; matchCode >= 255; matchCode -= 255 {
					dst[di] = 255
					di++
				}
				dst[di] = byte(matchCode)
				di++
			} else {
				dst[token] += byte(matchCode)
			}
		}
		anchor = ip

		// Test end of chunk.
		if ip >= mfLimitPlusOne {
			break
		}

		// Fill table.
		table[lz4Hash5(load64(ip-2))] = uint32(ip - 2)

		// Test next position.
		{
			h := lz4Hash5(load64(ip))
			matchIndex := int(table[h])
			table[h] = uint32(ip)
			if matchIndex+lz4DistanceMax >= ip && load32(matchIndex) == load32(ip) {
				token = di
				dst[di] = 0
				di++
				match = matchIndex
				goto nextMatch
			}
		}

		// Prepare next loop.
		ip++
		forwardH = lz4Hash5(load64(ip))
	}

lastLiterals:
	lastRun := end - anchor
	if di+lastRun+1+(lastRun+255-15)/255 > olimit {
		return 0
	}
	if lastRun >= 15 {
		dst[di] = 15 << 4
		di++
		acc := lastRun - 15
		for ; acc >= 255; acc -= 255 {
			dst[di] = 255
			di++
		}
		dst[di] = byte(acc)
		di++
	} else {
		dst[di] = byte(lastRun << 4)
		di++
	}
	di += copy(dst[di:], src[anchor:end])
	return di
}

// lz4Count is LZ4_count: the length of the common prefix of src[in:limit]
// and src[match:], match < in.
func lz4Count(src []byte, in, match, limit int) int {
	start := in
	for in+8 <= limit {
		if diff := binary.LittleEndian.Uint64(src[match:]) ^ binary.LittleEndian.Uint64(src[in:]); diff != 0 {
			return in + bits.TrailingZeros64(diff)>>3 - start
		}
		in += 8
		match += 8
	}
	if in+4 <= limit && binary.LittleEndian.Uint32(src[match:]) == binary.LittleEndian.Uint32(src[in:]) {
		in += 4
		match += 4
	}
	if in+2 <= limit && binary.LittleEndian.Uint16(src[match:]) == binary.LittleEndian.Uint16(src[in:]) {
		in += 2
		match += 2
	}
	if in < limit && src[match] == src[in] {
		in++
	}
	return in - start
}
