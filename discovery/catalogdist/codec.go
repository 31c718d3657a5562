package catalogdist

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
)

// Wire format.
//
// The tag ("s") of a catalog carried out of band:
//
//	"2;" digest ";" bytes ";" services
//	digest   = unpadded base64url of the first 16 bytes of SHA-256(manifest body)
//	bytes    = decimal length of the catalog's version-1 encoding (uncompressed)
//	services = decimal number of services in it
//
// The catalog itself (its version-1 encoding, deflated) travels in EventName user events,
// a manifest first and then the chunks of the deflated bytes:
//
//	manifest: 'm' | digest (16) | body
//	body:     chunks (1) | bytes (4, BE) | services (4, BE) | deflated length (4, BE) |
//	          chunks × SHA-256(chunk data)[:8]
//	chunk:    'c' | digest (16) | index (1) | data (up to ChunkData bytes)
//
// The tag commits to the manifest, the manifest to every chunk: a receiver checks each
// piece on its own as it arrives, so a forged chunk is dropped without spoiling the real
// one under the same key, and nothing is applied that the owner's tag does not name. The
// tag's bytes and services must match the manifest's, so a receiver can refuse a catalog
// beyond its limits before assembling anything.
//
// A request (RequestName) is a list of 16-byte digests a member lags behind on; the owner
// of one of them sends its catalog again (rate-limited, see dist.go).

const (
	// EventName is the user event carrying a manifest or a chunk.
	EventName = "weft-cat"
	// RequestName is the user event asking owners to send catalogs again.
	RequestName = "weft-catq"
	// TagPrefix starts a digest tag (version 2 of the catalog tag).
	TagPrefix = catalog.OutOfBandPrefix

	digestLen      = 16
	hashLen        = 8
	kindManifest   = 'm'
	kindChunk      = 'c'
	chunkHeader    = 1 + digestLen + 1
	manifestHeader = 1 + digestLen
	manifestFixed  = 1 + 4 + 4 + 4

	// ChunkData is the most deflated bytes one chunk carries.
	ChunkData = membership.UserEventLimit - len(EventName) - chunkHeader
	// MaxChunks is the most chunks one catalog may take (what one manifest can list): about
	// 25 KB deflated, which is over 1,000 typical services.
	MaxChunks = (membership.UserEventLimit - len(EventName) - manifestHeader - manifestFixed) / hashLen
	// maxRequestDigests is how many digests one request carries.
	maxRequestDigests = (membership.UserEventLimit - len(RequestName)) / digestLen
	// HardMaxBytes bounds a catalog's encoding whatever the configuration says.
	HardMaxBytes = catalog.MaxCatalogLen
)

// Digest names a catalog carried out of band.
type Digest [digestLen]byte

func (d Digest) String() string { return base64.RawURLEncoding.EncodeToString(d[:]) }

// Announce is what a digest tag says.
type Announce struct {
	Digest   Digest
	Bytes    int
	Services int
}

// Tag is the catalog tag value announcing a.
func (a Announce) Tag() string {
	return TagPrefix + a.Digest.String() + ";" + strconv.Itoa(a.Bytes) + ";" + strconv.Itoa(a.Services)
}

// IsTag reports whether a catalog tag value is a digest tag (version 2).
func IsTag(v string) bool { return strings.HasPrefix(v, TagPrefix) }

// Named errors of ParseTag and Encode.
var (
	ErrBadTag   = errors.New("bad catalog digest tag")
	ErrTooLarge = errors.New("catalog too large to carry")
)

// ParseTag reads a digest tag; only what Announce.Tag writes is accepted.
func ParseTag(v string) (Announce, error) {
	var a Announce
	rest, ok := strings.CutPrefix(v, TagPrefix)
	if !ok {
		return a, fmt.Errorf("%w: no %q prefix", ErrBadTag, TagPrefix)
	}
	f := strings.Split(rest, ";")
	if len(f) != 3 {
		return a, fmt.Errorf("%w: want 2;digest;bytes;services", ErrBadTag)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(f[0])
	if err != nil || len(b) != digestLen {
		return a, fmt.Errorf("%w: digest %q", ErrBadTag, f[0])
	}
	copy(a.Digest[:], b)
	if a.Bytes, err = canonicalInt(f[1]); err != nil || a.Bytes == 0 {
		return a, fmt.Errorf("%w: bytes %q", ErrBadTag, f[1])
	}
	if a.Services, err = canonicalInt(f[2]); err != nil || a.Services == 0 {
		return a, fmt.Errorf("%w: services %q", ErrBadTag, f[2])
	}
	return a, nil
}

// canonicalInt accepts 1–9 decimal digits without sign or leading zeros.
func canonicalInt(s string) (int, error) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	n := 0
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, nil
}

// Encoded is a catalog ready to send: its tag and its events, the manifest first.
type Encoded struct {
	Announce
	Events [][]byte
}

// Encode deflates a catalog's version-1 encoding (non-empty) and cuts it into events. It
// fails with ErrTooLarge when the deflated catalog needs more than MaxChunks chunks.
func Encode(catalogV1 string) (*Encoded, error) {
	if catalogV1 == "" {
		return nil, errors.New("catalogdist: empty catalog")
	}
	data := deflate(catalogV1)
	n := (len(data) + ChunkData - 1) / ChunkData
	if n > MaxChunks {
		return nil, fmt.Errorf("%w: %d bytes deflate to %d, more than the %d chunks (%d bytes) a manifest lists",
			ErrTooLarge, len(catalogV1), len(data), MaxChunks, MaxChunks*ChunkData)
	}
	return assemble(data, n, len(catalogV1), strings.Count(catalogV1, ";")), nil
}

func deflate(v string) []byte {
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	_, _ = io.WriteString(w, v)
	_ = w.Close()
	return z.Bytes()
}

// assemble cuts deflated data into n chunks under a manifest announcing a catalog of
// size bytes and services services.
func assemble(data []byte, n, size, services int) *Encoded {
	body := make([]byte, 0, manifestFixed+n*hashLen)
	body = append(body, byte(n))
	body = binary.BigEndian.AppendUint32(body, uint32(size))
	body = binary.BigEndian.AppendUint32(body, uint32(services))
	body = binary.BigEndian.AppendUint32(body, uint32(len(data)))
	parts := make([][]byte, n)
	for i := range n {
		parts[i] = data[i*ChunkData : min(len(data), (i+1)*ChunkData)]
		h := sha256.Sum256(parts[i])
		body = append(body, h[:hashLen]...)
	}
	sum := sha256.Sum256(body)
	e := &Encoded{Announce: Announce{Bytes: size, Services: services}}
	copy(e.Digest[:], sum[:])
	m := append([]byte{kindManifest}, e.Digest[:]...)
	e.Events = append(e.Events, append(m, body...))
	for i, p := range parts {
		c := make([]byte, 0, chunkHeader+len(p))
		c = append(c, kindChunk)
		c = append(c, e.Digest[:]...)
		c = append(c, byte(i))
		e.Events = append(e.Events, append(c, p...))
	}
	return e
}

// manifest is a verified manifest body.
type manifest struct {
	chunks   int
	bytes    int
	services int
	deflated int
	hashes   []byte
}

// parseManifest checks a manifest event's body against its digest.
func parseManifest(d Digest, body []byte) (*manifest, error) {
	if len(body) < manifestFixed {
		return nil, errors.New("short manifest")
	}
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:digestLen], d[:]) {
		return nil, errors.New("manifest does not hash to its digest")
	}
	m := &manifest{
		chunks:   int(body[0]),
		bytes:    int(binary.BigEndian.Uint32(body[1:5])),
		services: int(binary.BigEndian.Uint32(body[5:9])),
		deflated: int(binary.BigEndian.Uint32(body[9:13])),
		hashes:   body[manifestFixed:],
	}
	switch {
	case m.chunks == 0 || m.chunks > MaxChunks || len(m.hashes) != m.chunks*hashLen:
		return nil, fmt.Errorf("manifest lists %d chunks in %d bytes", m.chunks, len(m.hashes))
	case m.deflated > m.chunks*ChunkData || m.deflated <= (m.chunks-1)*ChunkData:
		return nil, fmt.Errorf("manifest: %d deflated bytes in %d chunks", m.deflated, m.chunks)
	}
	return m, nil
}

// inflate decompresses data, refusing more than want bytes.
func inflate(data []byte, want int) (string, error) {
	r := flate.NewReader(bytes.NewReader(data))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(want)+1))
	if err != nil {
		return "", fmt.Errorf("inflate: %w", err)
	}
	if len(out) != want {
		return "", fmt.Errorf("inflates to %s bytes, the tag says %d", lenString(len(out), want), want)
	}
	return string(out), nil
}

func lenString(got, want int) string {
	if got > want {
		return "more than " + strconv.Itoa(want)
	}
	return strconv.Itoa(got)
}

// EncodeAs is Encode without its bound and with the manifest claiming size bytes and
// services services whatever catalogV1 holds (cut to MaxChunks chunks): what a hostile
// member holding the gossip key can send. For tests of the receiving side.
func EncodeAs(catalogV1 string, size, services int) *Encoded {
	data := deflate(catalogV1)
	n := min((len(data)+ChunkData-1)/ChunkData, MaxChunks)
	return assemble(data[:min(len(data), n*ChunkData)], n, size, services)
}
