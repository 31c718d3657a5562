package headbuf

import "sync"

// Buffer keeps the first limit bytes written to it; safe for concurrent writers.
type Buffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

// New returns a Buffer that keeps the first limit bytes.
func New(limit int) *Buffer { return &Buffer{limit: limit} }

// Write keeps what fits of p and reports all of p written, so that a writer (an exec.Cmd's
// copy goroutine) never fails once the buffer is full.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// String returns the bytes kept.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
